//! What every HTTP surface shares (the webhook intake, the storefront search API, the
//! admin API): helpers on responses and the per-request tracing span, below all of
//! them, so that none of the surfaces imports another.

use tower_http::trace::TraceLayer;

/// Marks `response` as the last on its connection. For answers that refuse a body
/// without reading all of it: the server closes the connection after them, and
/// without the header a client could send its next request on a connection that is
/// going away, and get no answer.
pub fn last_on_connection(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// The tracing layer of a listener: every request runs in a `request` span naming the
/// listener, method and path (never the query string, which may carry a filter), so
/// whatever a handler logs says which request it belongs to. Requests and responses
/// are logged at debug (with the latency); failures are not logged here, because each
/// surface logs its own errors with their cause and a load-shedding 503 is not one.
pub fn request_spans(listener: &'static str) -> RequestSpans {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan { listener })
        .on_failure(())
}

/// [`request_spans`]' layer.
pub type RequestSpans = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    RequestSpan,
    tower_http::trace::DefaultOnRequest,
    tower_http::trace::DefaultOnResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
>;

/// Makes the `request` span of [`request_spans`].
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan {
    listener: &'static str,
}

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        tracing::info_span!(
            "request",
            listener = self.listener,
            method = %request.method(),
            path = request.uri().path(),
        )
    }
}

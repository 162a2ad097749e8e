//! What every HTTP surface shares (the webhook intake, the storefront search API, the
//! admin API): helpers on responses that sit below all of them, so that none of the
//! surfaces imports another.

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

//! Search API latency: `catalog_mirror_search_duration_seconds{route,status}`, one
//! observation per request from arrival to the response head, measured around the
//! search routes (route is the matched template, e.g. `/indexes/{uid}/search`, so the
//! label set stays small). CORS preflights are not searches and are not recorded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

pub async fn search_latency(request: Request, next: Next) -> Response {
    let route = (request.method() != Method::OPTIONS)
        .then(|| {
            request
                .extensions()
                .get::<MatchedPath>()
                .map(|path| path.as_str().to_owned())
        })
        .flatten();
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(route) = route {
        metrics::histogram!(
            "catalog_mirror_search_duration_seconds",
            "route" => route,
            "status" => response.status().as_u16().to_string(),
        )
        .record(started.elapsed().as_secs_f64());
    }
    response
}

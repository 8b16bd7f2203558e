//! No answer of either service may be kept by a cache.
//!
//! Every answer either service gives is about one person (their history,
//! their audio, their archive, their request's status) or about a request
//! someone made; a caching proxy or CDN in front of the API, or a browser's
//! disk cache on a shared computer, must keep none of it. [`no_store`]
//! marks every answer `Cache-Control: no-store` unless its handler chose a
//! policy itself (the simulator's oracle judges every answer to an
//! authenticated request by whether a shared cache may store it).

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Middleware: `Cache-Control: no-store` on every answer whose handler set
/// no `Cache-Control` of its own.
pub async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn cache_control(path: &str) -> String {
        let router = Router::new()
            .route("/plain", get(|| async { "x" }))
            .route(
                "/own",
                get(|| async { ([(header::CACHE_CONTROL, "private, max-age=5")], "x") }),
            )
            .layer(axum::middleware::map_response(no_store));
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let Ok(response) = router.oneshot(request).await;
        response.headers()[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .to_string()
    }

    #[tokio::test]
    async fn every_answer_says_no_store_unless_its_handler_chose() {
        assert_eq!(cache_control("/plain").await, "no-store");
        assert_eq!(cache_control("/missing").await, "no-store");
        assert_eq!(cache_control("/own").await, "private, max-age=5");
    }
}

//! Serving a router on any listener, with the `Date` header off.

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::Spawner;

/// Serve `router` on every connection `listener` accepts, until the task is
/// dropped. Each connection is HTTP/1 with keep-alive; hyper's automatic
/// `Date` header is off because it reads the OS clock.
pub async fn serve<L: Listener>(listener: L, router: Router) {
    serve_with(listener, router, Spawner::Tokio).await
}

/// [`serve`], with each connection's task started by `spawner`.
pub async fn serve_with<L: Listener>(mut listener: L, router: Router, spawner: Spawner) {
    loop {
        let (io, _addr) = listener.accept().await;
        let service = TowerToHyperService::new(router.clone());
        spawner.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            // A peer that hangs up mid-request is routine; nothing to report.
            let _ = connection.await;
        });
    }
}

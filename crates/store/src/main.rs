//! `crosstalk-store serve`: the recording store on a real socket, with its
//! database in a file.

use crosstalk_service::real::{SystemClock, os_entropy};
use crosstalk_store::{Store, StoreConfig, router};
use std::sync::Arc;

fn usage() -> ! {
    eprintln!(
        "usage: crosstalk-store serve --db PATH [--listen ADDR]\n\
         The export service's token is read from CROSSTALK_SERVICE_TOKEN."
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("serve") {
        usage();
    }
    let mut db_path = None;
    let mut listen = "127.0.0.1:7400".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db_path = Some(args.next().unwrap_or_else(|| usage())),
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let Some(db_path) = db_path else { usage() };
    let Ok(service_token) = std::env::var("CROSSTALK_SERVICE_TOKEN") else {
        eprintln!("error: CROSSTALK_SERVICE_TOKEN must be set");
        std::process::exit(2)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(2)
        });
    runtime.block_on(async move {
        let backend = crosstalk_service::real::file_backend(&db_path).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
        let entropy = os_entropy().unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
        let config = StoreConfig::new(service_token);
        let limits = config.limits;
        let store = Store::open(backend, Arc::new(SystemClock), Arc::new(entropy), config)
            .unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(2)
            });
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .unwrap_or_else(|e| {
                eprintln!("error: binding {listen}: {e}");
                std::process::exit(2)
            });
        eprintln!("crosstalk-store listening on {listen}, database {db_path}");
        let store = Arc::new(store);
        crosstalk_service::Spawner::Tokio.spawn(
            store
                .clone()
                .run_order_sweeper(std::time::Duration::from_secs(1)),
        );
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {}
            _ = store.until_storage_fails() => {
                eprintln!("error: the disk failed; exiting so that a restart reopens the database");
                std::process::exit(1);
            }
            _ = crosstalk_service::serve_limited(
                listener,
                router(store.clone()),
                crosstalk_service::Spawner::Tokio,
                limits,
            ) => {}
        }
    });
}

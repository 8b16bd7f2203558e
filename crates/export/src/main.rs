//! `crosstalk-export serve`: the DSAR export service on a real socket, with
//! its database in a file, talking to a running `crosstalk-store`.

use crosstalk_export::{ExportConfig, ExportService, router};
use crosstalk_service::HttpClient;
use crosstalk_service::real::{SystemClock, TcpConnector, os_entropy};
use std::sync::Arc;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: crosstalk-export serve --db PATH --store ADDR [--listen ADDR]\n\
         The token presented to the store is read from CROSSTALK_SERVICE_TOKEN."
    );
    std::process::exit(2)
}

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("serve") {
        usage();
    }
    let (mut db_path, mut store_address) = (None, None);
    let mut listen = "127.0.0.1:7401".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db_path = Some(args.next().unwrap_or_else(|| usage())),
            "--store" => store_address = Some(args.next().unwrap_or_else(|| usage())),
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let (Some(db_path), Some(store_address)) = (db_path, store_address) else { usage() };
    let service_token = std::env::var("CROSSTALK_SERVICE_TOKEN")
        .unwrap_or_else(|_| fail("CROSSTALK_SERVICE_TOKEN must be set".into()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("starting the runtime: {e}")));
    runtime.block_on(async move {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&db_path)
            .unwrap_or_else(|e| fail(format!("opening {db_path}: {e}")));
        let backend = redb::backends::FileBackend::new(file)
            .unwrap_or_else(|e| fail(format!("locking {db_path}: {e}")));
        let store = HttpClient::new(Arc::new(TcpConnector { address: store_address }), Duration::from_secs(10), 8);
        let config = ExportConfig { store_service_token: service_token, ..ExportConfig::default() };
        let entropy = os_entropy().unwrap_or_else(|e| fail(e.to_string()));
        let service = ExportService::open(backend, Arc::new(SystemClock), Arc::new(entropy), store, config)
            .map(Arc::new)
            .unwrap_or_else(|e| fail(e));
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .unwrap_or_else(|e| fail(format!("binding {listen}: {e}")));
        eprintln!("crosstalk-export listening on {listen}, database {db_path}");
        crosstalk_service::Spawner::Tokio.spawn(service.clone().run_worker());
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {}
            _ = crosstalk_service::serve(listener, router(service)) => {}
        }
    });
}

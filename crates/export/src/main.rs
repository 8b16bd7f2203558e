//! `crosstalk-export serve`: the DSAR export service on a real socket, with
//! its database in a file, talking to a running `crosstalk-store`.
//! `crosstalk-export worker`: a worker that builds archives for it.

use crosstalk_export::worker::{Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient, router};
use crosstalk_service::HttpClient;
use crosstalk_service::real::{SystemClock, TcpConnector, os_entropy};
use std::sync::Arc;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: crosstalk-export serve --db PATH --store ADDR [--listen ADDR]\n\
         \x20      crosstalk-export worker --export ADDR --store ADDR [--name NAME]\n\
         Tokens come from the environment: CROSSTALK_SERVICE_TOKEN (presented to the store),\n\
         CROSSTALK_WORKER_TOKEN (between the service and its workers), and for `serve`\n\
         CROSSTALK_AGENT_TOKENS as name=token pairs separated by commas."
    );
    std::process::exit(2)
}

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(format!("{name} must be set")))
}

fn client(address: String) -> HttpClient {
    HttpClient::new(
        Arc::new(TcpConnector { address }),
        Duration::from_secs(30),
        8,
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| usage());
    let mut options = std::collections::BTreeMap::new();
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--db" | "--store" | "--listen" | "--export" | "--name" => {
                options.insert(flag, value);
            }
            _ => usage(),
        }
    }
    let option = |name: &str| options.get(name).cloned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("starting the runtime: {e}")));
    let store_address = option("--store").unwrap_or_else(|| usage());
    let store = StoreClient::new(client(store_address), env("CROSSTALK_SERVICE_TOKEN"));
    match command.as_str() {
        "serve" => {
            let db_path = option("--db").unwrap_or_else(|| usage());
            let listen = option("--listen").unwrap_or_else(|| "127.0.0.1:7401".to_string());
            let agent_tokens = std::env::var("CROSSTALK_AGENT_TOKENS")
                .unwrap_or_default()
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((name, token)) if !name.is_empty() && token.len() >= 16 => {
                        (name.to_string(), token.to_string())
                    }
                    _ => {
                        fail("CROSSTALK_AGENT_TOKENS: expected name=token (16+ bytes) pairs".into())
                    }
                })
                .collect();
            let config = ExportConfig {
                worker_token: env("CROSSTALK_WORKER_TOKEN"),
                agent_tokens,
                ..ExportConfig::default()
            };
            let limits = config.limits;
            runtime.block_on(async move {
                let backend =
                    crosstalk_service::real::file_backend(&db_path).unwrap_or_else(|e| fail(e));
                let entropy = os_entropy().unwrap_or_else(|e| fail(e.to_string()));
                let service = ExportService::open(
                    backend,
                    Arc::new(SystemClock),
                    Arc::new(entropy),
                    store,
                    config,
                )
                .map(Arc::new)
                .unwrap_or_else(|e| fail(e));
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .unwrap_or_else(|e| fail(format!("binding {listen}: {e}")));
                eprintln!("crosstalk-export listening on {listen}, database {db_path}");
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = crosstalk_service::serve_limited(
                        listener,
                        router(service),
                        crosstalk_service::Spawner::Tokio,
                        limits,
                    ) => {}
                }
            });
        }
        "worker" => {
            let export_address = option("--export").unwrap_or_else(|| usage());
            let name = option("--name").unwrap_or_else(|| "worker".to_string());
            let config = WorkerConfig {
                name,
                worker_token: env("CROSSTALK_WORKER_TOKEN"),
                poll_ms: 1_000,
                page_items: 50,
            };
            runtime.block_on(async move {
                let worker =
                    Worker::new(config, client(export_address), store, Arc::new(SystemClock));
                eprintln!("crosstalk-export worker started");
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = worker.run() => {}
                }
            });
        }
        _ => usage(),
    }
}

//! Wiring for real servers: the OS clock and OS entropy.
//!
//! This is the only module in `crates/` that reads the wall clock or the
//! operating system's randomness. Services never call it themselves; the
//! `serve` binaries construct these and inject them, and the simulator
//! injects its own simulated clock and seeded entropy instead.

use crosstalk_model::{Clock, SeededEntropy};
use rand::TryRngCore;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // Real-server wiring: the wall clock is the point.
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A ChaCha generator seeded from the operating system's randomness.
#[allow(clippy::disallowed_types)] // Real-server wiring: OS entropy seeds the generator.
pub fn os_entropy() -> std::io::Result<SeededEntropy> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| std::io::Error::other(format!("reading OS randomness: {e}")))?;
    Ok(SeededEntropy::from_seed_bytes(seed))
}

/// Connects to a fixed address over real TCP.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    pub address: String,
}

impl crate::client::Connect for TcpConnector {
    fn connect(&self) -> crate::client::ConnectFuture {
        let address = self.address.clone();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as crate::client::BoxIo)
        })
    }
}

/// The database file at `path` (created if missing), locked for this
/// process, as a redb backend.
pub fn file_backend(path: &str) -> Result<redb::backends::FileBackend, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("opening {path}: {e}"))?;
    redb::backends::FileBackend::new(file).map_err(|e| format!("locking {path}: {e}"))
}

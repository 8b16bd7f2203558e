//! Logging in (how a sign-up whose answer was lost is recovered), and the
//! store's reaction to a failing disk.

use crosstalk_model::{ManualClock, SeededEntropy};
use crosstalk_store::{Store, StoreConfig};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// An in-memory disk whose writes and syncs fail while `failing` is set.
#[derive(Debug)]
struct FlakyDisk {
    inner: InMemoryBackend,
    failing: Arc<AtomicBool>,
}

impl FlakyDisk {
    fn check(&self) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(io::Error::other("disk on fire"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FlakyDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

fn store_on(backend: impl StorageBackend) -> Store {
    Store::open(
        backend,
        Arc::new(ManualClock::new(1_000)),
        Arc::new(SeededEntropy::from_seed_u64(5)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .expect("store opens")
}

#[test]
fn login_gives_a_new_session_only_for_the_right_password() {
    let store = store_on(InMemoryBackend::new());
    let (alice, first) = store
        .signup("alice@example.com", "correct horse battery")
        .unwrap();
    let (again, second) = store
        .login("alice@example.com", "correct horse battery")
        .unwrap();
    assert_eq!(again, alice);
    assert_ne!(first, second, "each login is a new session");
    assert_eq!(store.authenticate_session(&second).unwrap(), alice);
    assert_eq!(
        store.authenticate_session(&first).unwrap(),
        alice,
        "old sessions keep working"
    );

    let wrong = store
        .login("alice@example.com", "correct horse batterY")
        .unwrap_err();
    let unknown = store
        .login("nobody@example.com", "correct horse battery")
        .unwrap_err();
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(
        wrong, unknown,
        "a wrong password and an unknown email look the same"
    );

    // A closed account cannot be logged into, and its email is free again.
    store.close_account(alice).unwrap();
    assert_eq!(
        store
            .login("alice@example.com", "correct horse battery")
            .unwrap_err(),
        unknown
    );
    let (new_alice, _) = store
        .signup("alice@example.com", "another password")
        .unwrap();
    assert!(new_alice.0 > alice.0, "account ids are never reused");
    assert!(
        store
            .login("alice@example.com", "correct horse battery")
            .is_err(),
        "the old password is gone"
    );
    assert_eq!(
        store
            .login("alice@example.com", "another password")
            .unwrap()
            .0,
        new_alice
    );
}

#[test]
fn production_settings_use_the_owasp_work_factor() {
    // OWASP (2023): at least 600,000 iterations of PBKDF2-HMAC-SHA256.
    assert_eq!(StoreConfig::new("svc").password_iterations, 600_000);
}

#[tokio::test]
async fn the_first_disk_error_marks_the_store_failed() {
    let failing = Arc::new(AtomicBool::new(false));
    let store = store_on(FlakyDisk {
        inner: InMemoryBackend::new(),
        failing: failing.clone(),
    });
    store
        .signup("bob@example.com", "correct horse battery")
        .unwrap();
    assert!(!store.storage_failed());

    failing.store(true, Ordering::SeqCst);
    let error = store
        .signup("carol@example.com", "correct horse battery")
        .unwrap_err();
    assert!(error.status.is_server_error(), "{error}");
    assert!(
        store.storage_failed(),
        "an I/O error must mark the store failed"
    );
    // The serving loop's signal resolves at once.
    tokio::time::timeout(
        std::time::Duration::from_secs(1),
        store.until_storage_fails(),
    )
    .await
    .expect("until_storage_fails resolves after a disk error");
    // Nothing half-written is visible: carol does not exist.
    failing.store(false, Ordering::SeqCst);
    assert!(
        store
            .login("carol@example.com", "correct horse battery")
            .is_err()
    );
}

/// Found by the model-based test's review: on a multi-threaded server an
/// account can close between a device's authentication and its upload. The
/// upload must then be refused inside its own transaction, not filed under
/// the closed account.
#[test]
fn an_upload_racing_the_account_closing_is_refused() {
    let store = store_on(InMemoryBackend::new());
    let (alice, _) = store
        .signup("alice@example.com", "correct horse battery")
        .unwrap();
    let (_, token) = store.register_device(alice, "kitchen").unwrap();
    let device = store.authenticate_device(&token).unwrap();
    store.close_account(alice).unwrap();
    let upload = crosstalk_store::NewRecording {
        upload_key: "k1".into(),
        captured_at_ms: 5,
        transcript: "hello".into(),
        audio: b"RIFF....WAVE".to_vec(),
        ownership_epoch: None,
        intent: None,
    };
    let refused = store.ingest(&device, upload).unwrap_err();
    assert_eq!(refused.status.as_u16(), 410, "{refused}");
    let page = store
        .list(crosstalk_store::ListScope::Service, alice, None, 10)
        .unwrap();
    assert!(
        page.items.is_empty(),
        "a closed account holds no recordings"
    );
}

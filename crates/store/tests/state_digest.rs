//! The store's state digest: equal for equal state, different for any
//! differing row, and independent of anything but the database.

use crosstalk_model::{ManualClock, SeededEntropy};
use crosstalk_store::{Store, StoreConfig};
use redb::backends::InMemoryBackend;
use std::sync::Arc;

fn store() -> Store {
    Store::open(
        InMemoryBackend::new(),
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
fn equal_state_gives_equal_digests_and_one_differing_row_changes_it() {
    let (a, b) = (store(), store());
    let empty = a.state_digest().unwrap();
    assert_eq!(empty, b.state_digest().unwrap());
    assert_eq!(empty.len(), 64, "hex SHA-256");
    a.signup("alice@example.com", "correct horse").unwrap();
    b.signup("alice@example.com", "correct horse").unwrap();
    let same = a.state_digest().unwrap();
    assert_eq!(same, b.state_digest().unwrap());
    assert_ne!(same, empty);
    // One more row in one store only: the digests part.
    b.signup("bob@example.com", "correct horse").unwrap();
    assert_ne!(a.state_digest().unwrap(), b.state_digest().unwrap());
    // Reading is not a change: the digest is stable.
    assert_eq!(a.state_digest().unwrap(), same);
}

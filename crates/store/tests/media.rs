//! Broadcast detection: identical audio heard in several homes is a media
//! event whatever the devices' clocks say, and nothing is ordered from it;
//! a purchase spoken in one home is placed after the hold.

use crosstalk_model::api::{Intent, OrderState};
use crosstalk_model::{AccountId, Clock, ManualClock, SeededEntropy};
use crosstalk_store::media::DEFAULT_HOLD_MS as HOLD_MS;
use crosstalk_store::{NewRecording, Store, StoreConfig};
use redb::backends::InMemoryBackend;
use std::sync::Arc;

fn wav(samples: &[i16]) -> Vec<u8> {
    let mut out = b"RIFF\0\0\0\0WAVEdata".to_vec();
    out.extend_from_slice(&((samples.len() * 2) as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn speech(seed: i32) -> Vec<i16> {
    (0..300)
        .map(|i| ((i * seed) % 20_000 - 10_000) as i16)
        .collect()
}

struct Home {
    account: AccountId,
    device: crosstalk_store::DeviceRecord,
}

fn homes(store: &Store, n: usize) -> Vec<Home> {
    (0..n)
        .map(|i| {
            let (account, _) = store
                .signup(&format!("home{i}@example.com"), "correct horse battery")
                .unwrap();
            let (_, token) = store.register_device(account, "speaker").unwrap();
            Home {
                account,
                device: store.authenticate_device(&token).unwrap(),
            }
        })
        .collect()
}

fn order(store: &Store, home: &Home, key: &str, audio: Vec<u8>, captured_at_ms: u64) {
    let upload = NewRecording {
        upload_key: key.into(),
        captured_at_ms,
        transcript: "alexa, order me a dollhouse".into(),
        audio,
        ownership_epoch: None,
        intent: Some(Intent::Purchase {
            item: "dollhouse".into(),
        }),
    };
    store.ingest(&home.device, upload).unwrap();
}

#[test]
fn a_broadcast_is_a_media_event_even_when_device_clocks_disagree() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Store::open(
        InMemoryBackend::new(),
        clock.clone(),
        Arc::new(SeededEntropy::from_seed_u64(9)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .unwrap();
    let homes = homes(&store, 4);
    let broadcast = wav(&speech(997));
    // The same television audio, heard at one moment; the speakers' clocks
    // are off by up to ten minutes, so the capture times disagree.
    for (i, home) in homes.iter().take(3).enumerate() {
        let skew_minutes = [-10i64, 0, 10][i];
        let captured = (1_000_000i64 + skew_minutes * 60_000) as u64;
        order(&store, home, "tv", broadcast.clone(), captured);
        clock.advance(200);
    }
    // A genuine purchase in the fourth home.
    order(&store, &homes[3], "mine", wav(&speech(331)), clock.now_ms());
    assert_eq!(
        store.sweep_held_orders().unwrap(),
        0,
        "nothing is decided during the hold"
    );
    clock.advance(HOLD_MS + 1);
    assert_eq!(store.sweep_held_orders().unwrap(), 4);
    for home in homes.iter().take(3) {
        let orders = store.orders(home.account).unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(
            orders[0].state,
            OrderState::SuppressedMediaEvent,
            "broadcast audio never orders"
        );
    }
    let genuine = store.orders(homes[3].account).unwrap();
    assert_eq!(
        genuine[0].state,
        OrderState::Placed,
        "a purchase spoken at home is placed"
    );
}

fn speak_message(
    store: &Store,
    home: &Home,
    key: &str,
    audio: Vec<u8>,
    captured_at_ms: u64,
    to: &str,
) -> u64 {
    let upload = NewRecording {
        upload_key: key.into(),
        captured_at_ms,
        transcript: format!("alexa, send a message to {to}"),
        audio,
        ownership_epoch: None,
        intent: Some(Intent::Message {
            contact_name: to.into(),
        }),
    };
    store.ingest(&home.device, upload).unwrap().0.0
}

#[test]
fn a_broadcast_message_command_is_never_sent_and_a_spoken_one_waits_for_confirmation() {
    use crosstalk_model::api::MessageState;
    let clock = Arc::new(ManualClock::new(2_000_000));
    let store = Store::open(
        InMemoryBackend::new(),
        clock.clone(),
        Arc::new(SeededEntropy::from_seed_u64(10)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .unwrap();
    let homes = homes(&store, 5);
    // Every home knows an "Ann" (home4's account); home3 also has "Anne",
    // so a name that is not exact resolves to nobody.
    for home in &homes[..4] {
        store
            .add_contact(home.account, "Ann", "home4@example.com")
            .unwrap();
    }
    let broadcast = wav(&speech(991));
    for home in homes.iter().take(3) {
        speak_message(&store, home, "tv", broadcast.clone(), clock.now_ms(), "Ann");
        clock.advance(150);
    }
    let genuine = speak_message(
        &store,
        &homes[3],
        "mine",
        wav(&speech(313)),
        clock.now_ms(),
        "Ann",
    );
    let unresolved = speak_message(
        &store,
        &homes[3],
        "typo",
        wav(&speech(777)),
        clock.now_ms(),
        "Anne",
    );
    assert!(unresolved > genuine);
    let held = store.outgoing_messages(homes[0].account).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].state, MessageState::Held);
    let err = store
        .confirm_message(homes[0].account, held[0].message_id, "home4@example.com")
        .unwrap_err();
    assert_eq!(
        err.status.as_u16(),
        409,
        "a held message cannot be confirmed"
    );
    clock.advance(HOLD_MS + 1);
    assert_eq!(
        store.sweep_held_orders().unwrap(),
        4,
        "three broadcast messages and one spoken at home"
    );
    for home in homes.iter().take(3) {
        let mine = store.outgoing_messages(home.account).unwrap();
        assert_eq!(mine[0].state, MessageState::SuppressedMediaEvent);
        let err = store
            .confirm_message(home.account, mine[0].message_id, "home4@example.com")
            .unwrap_err();
        assert_eq!(
            err.status.as_u16(),
            409,
            "a broadcast message can never be confirmed"
        );
    }
    let mine = store.outgoing_messages(homes[3].account).unwrap();
    assert_eq!(
        mine.len(),
        1,
        "a name that is not exactly a contact sends nothing"
    );
    assert_eq!(mine[0].state, MessageState::Pending);
    assert!(
        store.inbox(homes[4].account).unwrap().is_empty(),
        "nothing delivered before confirmation"
    );
    let delivered = store
        .confirm_message(homes[3].account, mine[0].message_id, "home4@example.com")
        .unwrap();
    assert_eq!(delivered.state, MessageState::Delivered);
    let inbox = store.inbox(homes[4].account).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].recording.id.0, genuine);
}

#[test]
fn the_hold_is_the_configured_one() {
    // A store configured with a ten-second hold decides a spoken purchase
    // after ten seconds, not after the default two minutes.
    let hold_ms = 10_000;
    assert!(hold_ms < HOLD_MS);
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Store::open(
        InMemoryBackend::new(),
        clock.clone(),
        Arc::new(SeededEntropy::from_seed_u64(9)),
        StoreConfig {
            hold_ms,
            password_iterations: 1,
            ..StoreConfig::new("svc")
        },
    )
    .unwrap();
    let homes = homes(&store, 1);
    order(&store, &homes[0], "mine", wav(&speech(331)), clock.now_ms());
    clock.advance(hold_ms - 1);
    assert_eq!(
        store.sweep_held_orders().unwrap(),
        0,
        "still held within the hold"
    );
    clock.advance(1);
    assert_eq!(
        store.sweep_held_orders().unwrap(),
        1,
        "decided when the hold ends"
    );
    let orders = store.orders(homes[0].account).unwrap();
    assert_eq!(orders[0].state, OrderState::Placed);
}

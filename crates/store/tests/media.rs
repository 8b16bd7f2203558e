//! Broadcast detection: identical audio heard in several homes is a media
//! event whatever the devices' clocks say, and nothing is ordered from it;
//! a purchase spoken in one home is placed after the hold.

use crosstalk_model::api::{Intent, OrderState};
use crosstalk_model::{AccountId, Clock, ManualClock, SeededEntropy};
use crosstalk_store::media::HOLD_MS;
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
    (0..300).map(|i| ((i * seed) % 20_000 - 10_000) as i16).collect()
}

struct Home {
    account: AccountId,
    device: crosstalk_store::DeviceRecord,
}

fn homes(store: &Store, n: usize) -> Vec<Home> {
    (0..n)
        .map(|i| {
            let (account, _) = store.signup(&format!("home{i}@example.com"), "correct horse battery").unwrap();
            let (_, token) = store.register_device(account, "speaker").unwrap();
            Home { account, device: store.authenticate_device(&token).unwrap() }
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
        intent: Some(Intent::Purchase { item: "dollhouse".into() }),
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
        StoreConfig { service_token: "svc".into(), password_iterations: 1 },
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
    assert_eq!(store.sweep_held_orders().unwrap(), 0, "nothing is decided during the hold");
    clock.advance(HOLD_MS + 1);
    assert_eq!(store.sweep_held_orders().unwrap(), 4);
    for home in homes.iter().take(3) {
        let orders = store.orders(home.account).unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].state, OrderState::SuppressedMediaEvent, "broadcast audio never orders");
    }
    let genuine = store.orders(homes[3].account).unwrap();
    assert_eq!(genuine[0].state, OrderState::Placed, "a purchase spoken at home is placed");
}

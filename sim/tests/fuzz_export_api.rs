//! The `export_api` fuzz target as ordinary tests: every committed corpus
//! input replays (and must pass against the correct build), the corpus
//! reaches the accepting paths (exports completed and downloaded, foreign
//! links refused, deletions, recycled emails...), a run replays
//! identically, random inputs raise no false alarm, and — built with
//! `--features planted-bugs` — the corpus catches the planted bugs this
//! target can see.
//!
//! The hand-made seeds are written here as operations and committed as
//! named files under `fuzz/corpus/export_api/`, encoded by
//! `crosstalk_sim::fuzzing::seed::seed_bytes` into the bytes `Arbitrary`
//! decodes back to the same operations; `seeds_are_committed` checks the
//! round trip and that the files agree. To add a seed, add a named
//! operation list to `seeds()` and run
//! `UPDATE_FUZZ_SEEDS=1 cargo test --release -p crosstalk-sim --test fuzz_export_api seeds_are_committed`
//! (it also rewrites `fuzz/dict/export_api.dict`, one token per kind of
//! operation the seeds use).

use crosstalk_sim::fuzzing::export_api::{
    Input, MAX_RAW_BODY_BYTES, Op, Stats, run_with_stats, seed_bytes,
};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Duration;

// Credentials (see `Op`).
const SESSION: u8 = 0;
const NONE: u8 = 1;
const STALE: u8 = 2;
const GUESSED: u8 = 3;

fn signup(person: u8) -> Op {
    Op::Signup { person }
}

fn upload(person: u8, content: u8, captured_ago_s: u8) -> Op {
    Op::Upload {
        person,
        device: 0,
        content,
        captured_ago_s,
        epochs_back: 0,
    }
}

fn upload_with(person: u8, device: u8, content: u8, epochs_back: u8) -> Op {
    Op::Upload {
        person,
        device,
        content,
        captured_ago_s: 1,
        epochs_back,
    }
}

fn list(viewer: u8, credential: u8, limit: u8, cursor: u8) -> Op {
    Op::List {
        viewer,
        credential,
        limit,
        cursor,
    }
}

/// A complete listing of the viewer's own history.
fn full_list(viewer: u8) -> Op {
    list(viewer, SESSION, 5, 0)
}

fn audio(viewer: u8, credential: u8, owner: u8, pick: u8) -> Op {
    Op::FetchAudio {
        viewer,
        credential,
        owner,
        pick,
    }
}

fn export(person: u8) -> Op {
    Op::RequestExport {
        person,
        credential: SESSION,
    }
}

const DRAIN: Op = Op::Work { mode: 0 };
const TWO_AT_ONCE: Op = Op::Work { mode: 1 };
const CLAIM_AND_DIE: Op = Op::Work { mode: 2 };
const RESUME_DEAD: Op = Op::Work { mode: 3 };
const ONE_SECOND: Op = Op::Advance { step: 1 };
const PAST_LEASE: Op = Op::Advance { step: 2 };
const PAST_RATE_WINDOW: Op = Op::Advance { step: 3 };
const PAST_LINK_TTL: Op = Op::Advance { step: 4 };

fn status(viewer: u8, credential: u8, owner: u8, pick: u8) -> Op {
    Op::Status {
        viewer,
        credential,
        owner,
        pick,
    }
}

fn download(viewer: u8, credential: u8, owner: u8, pick: u8) -> Op {
    Op::Download {
        viewer,
        credential,
        owner,
        pick,
    }
}

fn feed(person: u8, credential: u8) -> Op {
    Op::Feed { person, credential }
}

fn ticket(requester: u8, target: u8, action: u8, pick: u8) -> Op {
    Op::Ticket {
        requester,
        target,
        action,
        pick,
    }
}

#[allow(clippy::too_many_arguments)]
fn raw(
    router: u8,
    method: u8,
    template: u8,
    id: u8,
    credential: u8,
    person: u8,
    content_type: u8,
    body: &[u8],
) -> Op {
    let mut padded = [0; MAX_RAW_BODY_BYTES];
    let len = body.len().min(MAX_RAW_BODY_BYTES);
    padded[..len].copy_from_slice(&body[..len]);
    Op::Raw {
        router,
        method,
        template,
        id,
        credential,
        person,
        content_type,
        body_len: len as u8,
        body: padded,
    }
}

const STORE: u8 = 0;
const EXPORT: u8 = 1;
const GET: u8 = 0;
const POST: u8 = 1;
const PUT: u8 = 2;
const DELETE: u8 = 3;
const HEAD: u8 = 5;
const OPTIONS: u8 = 6;

/// The hand-made seeds: each reaches deep into one family of paths.
fn seeds() -> Vec<(&'static str, Input)> {
    let input = |ops: Vec<Op>| Input {
        plant: 0,
        config: 0,
        ops,
    };
    vec![
        (
            // Three people upload; two export and download their own
            // archives; everyone tries someone else's link, with a
            // session, with none and with a guessed one; own and foreign
            // playback by recording id; foreign export statuses.
            "export-and-foreign-links",
            input(vec![
                signup(0),
                signup(1),
                signup(2),
                upload(0, 0, 0),
                upload(0, 1, 1),
                upload(1, 2, 2),
                upload(2, 3, 3),
                Op::RetryUpload { person: 2 },
                audio(0, SESSION, 0, 0),
                audio(1, SESSION, 0, 0),
                audio(2, SESSION, 0, 1),
                audio(1, SESSION, 1, 0),
                ONE_SECOND,
                export(0),
                export(1),
                DRAIN,
                status(0, SESSION, 0, 0),
                status(1, SESSION, 1, 0),
                status(1, SESSION, 0, 0),
                status(2, GUESSED, 0, 0),
                download(0, SESSION, 0, 0),
                download(1, SESSION, 0, 0),
                download(2, SESSION, 0, 0),
                download(2, NONE, 0, 0),
                download(2, GUESSED, 1, 0),
                download(1, SESSION, 1, 0),
                download(0, SESSION, 1, 0),
                full_list(0),
                full_list(1),
                feed(0, SESSION),
                feed(1, SESSION),
            ]),
        ),
        (
            // A deletion after an export revokes its link; the rebuilt
            // archive lacks the deleted recording; then range and full
            // deletions, and a malformed one.
            "delete-revoke-rebuild",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(0, 1, 2),
                upload(0, 2, 3),
                upload(1, 3, 0),
                audio(0, SESSION, 0, 1),
                ONE_SECOND,
                export(0),
                DRAIN,
                status(0, SESSION, 0, 0),
                download(0, SESSION, 0, 0),
                Op::DeleteOne {
                    person: 0,
                    owner: 0,
                    pick: 1,
                },
                audio(0, SESSION, 0, 1),
                download(0, SESSION, 0, 0),
                full_list(0),
                ONE_SECOND,
                DRAIN,
                status(0, SESSION, 0, 0),
                download(0, SESSION, 0, 1),
                Op::DeleteOne {
                    person: 1,
                    owner: 0,
                    pick: 0,
                },
                Op::DeleteMany {
                    person: 0,
                    mode: 1,
                    from_s: 3,
                    to_s: 1,
                },
                full_list(0),
                Op::DeleteMany {
                    person: 0,
                    mode: 2,
                    from_s: 0,
                    to_s: 0,
                },
                Op::DeleteMany {
                    person: 0,
                    mode: 0,
                    from_s: 0,
                    to_s: 0,
                },
                full_list(0),
                download(0, SESSION, 0, 1),
                full_list(1),
            ]),
        ),
        (
            // Closing an account and signing up again with the same email:
            // a new principal, whose history starts empty; the old
            // sessions, device and links are refused.
            "close-and-recycle-email",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(0, 1, 1),
                upload(1, 2, 0),
                ONE_SECOND,
                export(0),
                DRAIN,
                status(0, SESSION, 0, 0),
                Op::CloseAccount { person: 0 },
                signup(1),
                signup(0),
                Op::RegisterDevice { person: 0 },
                upload_with(0, 1, 3, 0),
                upload_with(0, 0, 4, 0),
                Op::RetryUpload { person: 0 },
                list(0, STALE, 0, 0),
                audio(0, STALE, 0, 2),
                full_list(0),
                audio(0, SESSION, 0, 0),
                feed(0, STALE),
                Op::CloseAccount { person: 0 },
                Op::Login { person: 0 },
                signup(0),
                upload(0, 1, 0),
                Op::Login { person: 0 },
                ONE_SECOND,
                export(0),
                DRAIN,
                status(0, SESSION, 0, 1),
                download(0, SESSION, 0, 0),
                download(0, SESSION, 0, 1),
                download(0, STALE, 0, 1),
                full_list(0),
                full_list(1),
            ]),
        ),
        (
            // Paging with small limits; one's own cursor continues, another
            // account's cursor and a forged one are refused.
            "cursors-across-accounts",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(0, 1, 1),
                upload(0, 2, 2),
                upload(1, 3, 0),
                upload(1, 4, 1),
                list(0, SESSION, 1, 0),
                list(0, SESSION, 1, 1),
                list(1, SESSION, 1, 2),
                list(1, SESSION, 2, 0),
                list(0, SESSION, 4, 2),
                list(1, SESSION, 5, 3),
                list(1, SESSION, 6, 0),
                list(0, NONE, 1, 1),
                full_list(0),
                full_list(1),
            ]),
        ),
        (
            // Three homes say the same words in the same second: same
            // fingerprint, same capture time. Each plays its own copy.
            "same-sound-same-second",
            input(vec![
                signup(0),
                signup(1),
                signup(2),
                upload(0, 4, 0),
                upload(1, 4, 0),
                upload(2, 4, 0),
                audio(0, SESSION, 0, 0),
                audio(1, SESSION, 1, 0),
                audio(2, SESSION, 2, 0),
                audio(2, SESSION, 0, 0),
                full_list(0),
                full_list(1),
                full_list(2),
                ONE_SECOND,
                export(1),
                DRAIN,
                status(1, SESSION, 1, 0),
                download(1, SESSION, 1, 0),
            ]),
        ),
        (
            // A resold device: captures from before the sale stay with the
            // seller even when uploaded after it.
            "resale",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 1),
                Op::Transfer {
                    from: 0,
                    device: 0,
                    to: 1,
                },
                upload_with(1, 0, 1, 1),
                upload_with(1, 0, 2, 0),
                upload(0, 3, 0),
                full_list(0),
                full_list(1),
                audio(1, SESSION, 0, 1),
                ONE_SECOND,
                export(0),
                export(1),
                DRAIN,
                status(0, SESSION, 0, 0),
                status(1, SESSION, 1, 0),
                download(0, SESSION, 0, 0),
                download(1, SESSION, 1, 0),
            ]),
        ),
        (
            // Two exports built at once by one worker; a worker that dies
            // holding a claim, and its late attempt after another took over.
            "two-jobs-at-once",
            input(vec![
                signup(0),
                signup(1),
                signup(2),
                upload(0, 0, 0),
                upload(0, 1, 1),
                upload(1, 2, 0),
                upload(1, 3, 1),
                upload(2, 4, 0),
                ONE_SECOND,
                export(0),
                export(1),
                TWO_AT_ONCE,
                status(0, SESSION, 0, 0),
                status(1, SESSION, 1, 0),
                download(0, SESSION, 0, 0),
                download(1, SESSION, 1, 0),
                export(2),
                CLAIM_AND_DIE,
                DRAIN,
                PAST_LEASE,
                DRAIN,
                RESUME_DEAD,
                status(2, SESSION, 2, 0),
                download(2, SESSION, 2, 0),
                download(0, SESSION, 2, 0),
            ]),
        ),
        (
            // Support tickets: the subject verifies with the code from
            // their own feed and gets the link there; an impersonator's
            // ticket stays unverified; the agent cannot vouch for anyone
            // nor attach an archive.
            "tickets-and-agent",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(1, 1, 0),
                ONE_SECOND,
                ticket(0, 0, 0, 0),
                ticket(0, 0, 1, 0),
                DRAIN,
                ticket(0, 0, 3, 0),
                feed(0, SESSION),
                download(0, SESSION, 0, 0),
                download(1, SESSION, 0, 0),
                export(1),
                DRAIN,
                ticket(0, 0, 3, 3),
                ticket(1, 0, 0, 0),
                ticket(1, 0, 1, 1),
                ticket(1, 0, 2, 1),
                ticket(1, 0, 3, 1),
                feed(0, SESSION),
                feed(1, SESSION),
                status(1, SESSION, 1, 0),
                download(1, SESSION, 1, 0),
            ]),
        ),
        (
            // A client that hangs up while the export service is asking
            // the store who it is; the next caller must be answered as
            // themselves.
            "abandoned-requests",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(1, 1, 0),
                ONE_SECOND,
                export(0),
                export(1),
                DRAIN,
                status(0, SESSION, 0, 0),
                status(1, SESSION, 1, 0),
                Op::Abandon {
                    viewer: 0,
                    kind: 0,
                    extra_yields: 0,
                },
                status(1, SESSION, 0, 0),
                download(1, SESSION, 0, 0),
                Op::Abandon {
                    viewer: 0,
                    kind: 1,
                    extra_yields: 1,
                },
                status(1, SESSION, 0, 0),
                Op::Abandon {
                    viewer: 1,
                    kind: 2,
                    extra_yields: 2,
                },
                download(0, SESSION, 1, 0),
                download(0, SESSION, 0, 0),
                download(1, SESSION, 1, 0),
            ]),
        ),
        (
            // Raw requests of every kind, an outage between the export
            // service and the store, expired links and rate limits.
            "raw-requests-and-outage",
            input(vec![
                signup(0),
                signup(1),
                upload(0, 0, 0),
                upload(1, 1, 0),
                raw(STORE, GET, 1, 5, SESSION, 0, 0, b""),
                raw(STORE, GET, 2, 1, SESSION, 1, 0, b""),
                raw(STORE, GET, 2, 1, 4, 1, 0, b""),
                raw(STORE, POST, 4, 0, SESSION, 0, 0, b"{\"name\":\"x\""),
                raw(STORE, PUT, 3, 250, NONE, 0, 1, b""),
                raw(STORE, GET, 9, 1, NONE, 0, 0, b""),
                raw(STORE, GET, 25, 3, SESSION, 1, 0, b""),
                raw(STORE, GET, 5, 0, SESSION, 0, 0, b""),
                raw(STORE, DELETE, 3, 253, SESSION, 0, 0, b""),
                raw(STORE, POST, 26, 0, NONE, 0, 2, b"{}"),
                raw(EXPORT, POST, 13, 0, GUESSED, 0, 0, b""),
                raw(EXPORT, GET, 21, 0, 5, 0, 0, b""),
                raw(EXPORT, GET, 18, 0, 5, 0, 0, b""),
                raw(EXPORT, POST, 23, 0, 5, 0, 0, b"{\"worker\":\"me\"}"),
                raw(EXPORT, POST, 24, 1, NONE, 0, 0, b"{}"),
                raw(EXPORT, POST, 16, 0, NONE, 0, 0, b"{\"claimed_email\":1}"),
                raw(EXPORT, HEAD, 14, 1, SESSION, 0, 0, b""),
                raw(EXPORT, OPTIONS, 15, 7, SESSION, 0, 0, b""),
                raw(STORE, GET, 27, 0, NONE, 0, 0, b"v1/recordings?limit=2"),
                raw(EXPORT, GET, 27, 0, NONE, 0, 0, b"v1//exports/../1"),
                Op::StoreDown { down: 1 },
                export(0),
                status(0, SESSION, 0, 0),
                Op::StoreDown { down: 0 },
                ONE_SECOND,
                export(0),
                export(0),
                DRAIN,
                raw(EXPORT, POST, 13, 0, SESSION, 1, 0, b""),
                DRAIN,
                status(0, SESSION, 0, 0),
                raw(EXPORT, GET, 14, 1, SESSION, 0, 0, b""),
                download(0, SESSION, 0, 0),
                download(0, SESSION, 0, 0),
                download(0, SESSION, 0, 0),
                download(0, SESSION, 0, 0),
                export(0),
                export(0),
                DRAIN,
                export(0),
                DRAIN,
                export(0),
                PAST_RATE_WINDOW,
                export(0),
                Op::StoreDown { down: 1 },
                DRAIN,
                Op::StoreDown { down: 0 },
                status(0, SESSION, 0, 0),
                PAST_LINK_TTL,
                status(0, SESSION, 0, 0),
                download(0, SESSION, 0, 1),
                feed(1, SESSION),
                status(1, SESSION, 1, 0),
            ]),
        ),
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/export_api")
}

/// Every file of the committed corpus, in name order.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&path).expect("a corpus input reads"))
        })
        .collect()
}

#[test]
fn seeds_are_committed() {
    let dir = corpus_dir();
    let update = std::env::var_os("UPDATE_FUZZ_SEEDS").is_some();
    for (name, input) in seeds() {
        let bytes = seed_bytes(&input);
        assert_eq!(Input::decode(&bytes), input, "{name} round-trips");
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).expect("the corpus directory");
            std::fs::write(&path, &bytes).expect("the seed writes");
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} differs from the seed {name} in this file; rewrite the seeds with \
             UPDATE_FUZZ_SEEDS=1 cargo test -p crosstalk-sim --test fuzz_export_api",
            path.display()
        );
    }
    if update {
        std::fs::write(dictionary_path(), dictionary()).expect("the dictionary writes");
    }
}

fn dictionary_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/dict/export_api.dict")
}

/// One token per kind of operation the seeds use (its first use): the
/// bytes of that one operation, "one more" byte included.
fn dictionary() -> String {
    let mut text = String::from(
        "# export_api: one whole operation per token, as `Arbitrary` reads it\n\
         # (written by sim/tests/fuzz_export_api.rs with UPDATE_FUZZ_SEEDS=1).\n",
    );
    let mut kinds = std::collections::BTreeSet::new();
    for (_, input) in seeds() {
        for op in input.ops {
            let kind = format!("{op:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string();
            if !kinds.insert(kind.clone()) {
                continue;
            }
            let bytes = seed_bytes(&Input {
                plant: 0,
                config: 0,
                ops: vec![op],
            });
            let escaped: String = bytes[2..].iter().map(|b| format!("\\x{b:02x}")).collect();
            text.push_str(&format!("{}=\"{escaped}\"\n", kind.to_lowercase()));
        }
    }
    text
}

/// Every token of `fuzz/dict/export_api.dict` is one whole operation: it
/// decodes to one operation whose bytes are the token.
#[test]
fn the_dictionary_holds_whole_operations() {
    let text = std::fs::read_to_string(dictionary_path()).expect("the dictionary reads");
    let mut tokens = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, quoted) = line.split_once('=').expect("name=\"value\"");
        let escaped = quoted.trim_matches('"');
        let token: Vec<u8> = escaped
            .split("\\x")
            .filter(|hex| !hex.is_empty())
            .map(|hex| u8::from_str_radix(hex, 16).expect("\\xNN escapes"))
            .collect();
        let mut bytes = vec![0, 0];
        bytes.extend_from_slice(&token);
        let input = Input::decode(&bytes);
        assert_eq!(input.ops.len(), 1, "{name}");
        assert_eq!(seed_bytes(&input), bytes, "{name}");
        tokens += 1;
    }
    assert!(tokens >= 10, "the dictionary holds {tokens} tokens");
}

/// Add up what the runs did.
fn add(total: &mut Stats, one: &Stats) {
    total.ops += one.ops;
    total.requests += one.requests;
    total.controls.add(&one.controls);
}

/// Every committed input passes against the correct build (whatever its
/// byte 0 asks for, the bugs are planted only in a `planted-bugs` build,
/// and the committed inputs ask for none), and together they reach the
/// accepting paths, not only the refusals.
#[test]
fn corpus_replays_and_reaches_the_accepting_paths() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 5,
        "the export_api corpus holds at least five inputs, found {}",
        corpus.len()
    );
    let mut total = Stats::default();
    let mut elapsed = Duration::ZERO;
    for (name, bytes) in &corpus {
        if Input::decode(bytes).planted_bug().is_some() {
            continue; // A saved crash of a planted build: not for this one.
        }
        #[allow(clippy::disallowed_methods)] // Wall time for the report only.
        let started = std::time::Instant::now();
        let stats = run_with_stats(bytes);
        elapsed += started.elapsed();
        assert_eq!(stats.planted, None, "{name}");
        add(&mut total, &stats);
    }
    eprintln!(
        "export_api corpus: {} inputs, {} operations, {} requests in {elapsed:?} ({:?} per input)\n{total:#?}",
        corpus.len(),
        total.ops,
        total.requests,
        elapsed / corpus.len() as u32
    );
    let c = &total.controls;
    let probe = |kind: &str| c.probes.get(kind).map_or(0, |a| a.refused);
    let controls = [
        ("exports completed", c.exports_completed),
        (
            "recordings checked in archives",
            c.archive_recordings_checked,
        ),
        (
            "racy recordings allowed in archives",
            c.racy_recordings_allowed,
        ),
        ("foreign links refused", c.foreign_link_refused),
        (
            "links without a session refused",
            probe("link without a session"),
        ),
        ("archives revoked", c.archives_revoked),
        ("own audio served", c.own_audio_checked),
        (
            "foreign playback refused",
            probe("foreign recording: playback"),
        ),
        (
            "foreign deletion refused",
            probe("foreign recording: delete"),
        ),
        ("complete listings audited", c.audits_completed),
        (
            "recordings found in complete listings",
            c.recordings_verified_durable,
        ),
        (
            "deletions confirmed by complete listings",
            c.deletions_verified,
        ),
        ("deletion answers judged", c.deletion_answers_judged),
        ("deletions acknowledged", c.deletions_acknowledged),
        ("accounts closed", c.accounts_closed),
        ("recycled emails", c.accounts_recycled),
        ("upload retries answered", probe("upload retry answered")),
        ("device transfers", c.devices_transferred),
        ("late workers fenced out", probe("stale worker fenced out")),
        ("tickets verified", c.tickets_verified),
        (
            "manual verifications refused",
            c.manual_verifications_refused,
        ),
        ("archive attachments refused", c.archive_attachments_refused),
        ("recordings delivered and judged", c.recordings_delivered),
        ("error bodies judged", c.error_bodies_judged),
        ("links delivered and judged", c.links_delivered_judged),
        (
            "server errors excused by the store outage",
            c.server_errors_excused,
        ),
        ("answers judged by the API contract", c.api_replies_judged),
    ];
    let missing: Vec<&str> = controls
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(what, _)| *what)
        .collect();
    assert!(
        missing.is_empty(),
        "the corpus never reaches: {missing:?}\n{total:#?}"
    );
}

/// The same input behaves the same way: every answer, in order.
#[test]
fn a_run_replays_identically() {
    for (name, bytes) in corpus() {
        let first = run_with_stats(&bytes);
        let second = run_with_stats(&bytes);
        assert_eq!(first, second, "{name} replays identically");
    }
}

/// Corpus inputs mutated the way a fuzzer mutates them, and random
/// sequences of operations (a fixed generator: the same cases every time),
/// never make the correct build look broken:
/// no false alarms from the oracle. `EXPORT_API_CASES` sets the count.
#[test]
fn mutated_inputs_raise_no_false_alarm() {
    let corpus = corpus();
    let cases: usize = std::env::var("EXPORT_API_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0e8b_0a91);
    for case in 0..cases {
        if case % 2 == 1 {
            // Broad rather than deep: a random sequence of operations with
            // small arguments (people, picks and choices that exist).
            let ops = (0..rng.random_range(1..=64))
                .map(|_| {
                    let mut op = vec![0, 0, 1];
                    op.extend(rng.random::<u32>().to_le_bytes());
                    op.extend((0..24).map(|_| rng.random_range(0..6u8)));
                    Input::decode(&op).ops.remove(0)
                })
                .collect();
            let input = Input {
                plant: 0,
                config: rng.random(),
                ops,
            };
            let bytes = seed_bytes(&input);
            let outcome = std::panic::catch_unwind(|| run_with_stats(&bytes));
            assert!(
                outcome.is_ok(),
                "random case {case} failed against the correct build: {bytes:?}"
            );
            continue;
        }
        let mut bytes = corpus[rng.random_range(0..corpus.len())].1.clone();
        for _ in 0..rng.random_range(1..=8) {
            let at = rng.random_range(0..=bytes.len());
            match rng.random_range(0..4) {
                0 if at < bytes.len() => bytes[at] = rng.random(),
                1 => bytes.insert(at, rng.random()),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {
                    // Splice a piece of another input in.
                    let other = &corpus[rng.random_range(0..corpus.len())].1;
                    let from = rng.random_range(0..other.len());
                    let len = rng.random_range(0..=16).min(other.len() - from);
                    bytes.splice(at..at, other[from..from + len].iter().copied());
                }
            }
        }
        if bytes.is_empty() {
            bytes.push(0);
        }
        bytes[0] = 0; // No planted bug.
        let outcome = std::panic::catch_unwind(|| run_with_stats(&bytes));
        assert!(
            outcome.is_ok(),
            "mutated case {case} failed against the correct build: {bytes:?}"
        );
    }
}

/// With the catalogue compiled in, the corpus finds every planted bug this
/// target can see: each is caught by at least one committed input with
/// byte 0 set to plant it.
#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use crosstalk_service::Bug;
    use crosstalk_sim::fuzzing::export_api::plant_byte;
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    /// Run `bytes`, catching the panic that reports a violation (without
    /// printing it); returns its message.
    fn violation(bytes: &[u8]) -> Option<String> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    default(info);
                }
            }));
        });
        QUIET.with(|q| q.set(true));
        let outcome = std::panic::catch_unwind(|| run_with_stats(bytes));
        QUIET.with(|q| q.set(false));
        let payload = outcome.err()?;
        Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        )
    }

    /// The bugs a request-level harness of store and export can see.
    /// (contact-fuzzy-match needs voice messages, which this target leaves
    /// out: the `plan` target covers it.)
    const CAUGHT: [Bug; 13] = [
        Bug::AgentFreeRecipient,
        Bug::PoolCancelDesync,
        Bug::FingerprintCache,
        Bug::ClockIdCollision,
        Bug::ResaleHistory,
        Bug::UnscopedCursor,
        Bug::SharedTempPath,
        Bug::UnboundLink,
        Bug::DeleteExportRace,
        Bug::CacheMissingTenant,
        Bug::RecycledAccountId,
        Bug::DuplicateRequestBypass,
        Bug::WeakIdentity,
    ];

    #[test]
    fn the_corpus_catches_the_planted_bugs() {
        let corpus = corpus();
        let mut report = Vec::new();
        let mut escaped = Vec::new();
        for bug in CAUGHT {
            let mut caught_by = Vec::new();
            for (name, bytes) in &corpus {
                let mut planted = bytes.clone();
                if planted.is_empty() {
                    planted.push(0);
                }
                planted[0] = plant_byte(bug);
                assert_eq!(Input::decode(&planted).planted_bug(), Some(bug));
                if let Some(message) = violation(&planted) {
                    // The invariant, and the evidence.
                    let head: Vec<&str> = message.lines().take(2).map(str::trim).collect();
                    caught_by.push(format!("{name}: {}", head.join(" ")));
                }
            }
            if caught_by.is_empty() {
                escaped.push(bug);
            }
            report.push(format!("{bug}:\n    {}", caught_by.join("\n    ")));
        }
        eprintln!("{}", report.join("\n"));
        assert!(escaped.is_empty(), "no corpus input catches {escaped:?}");
    }

    #[test]
    fn without_a_planted_bug_the_corpus_passes() {
        for (name, bytes) in corpus() {
            let mut clean = bytes.clone();
            if clean.is_empty() {
                clean.push(0);
            }
            clean[0] = 0;
            assert_eq!(violation(&clean), None, "{name} passes the correct build");
        }
    }
}

//! The harness's own limits: a world too crowded for the simulated network
//! is a harness failure, reported as one line (scenario, seed, cause) with
//! exit code 2 and no backtrace; a crowded world with the socket capacity
//! derived from its size runs through, its services shedding load with 503
//! `overloaded` and its clients waiting as told; output read by a reader
//! that stops early ends the process quietly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Smoke with `accounts` people and, optionally, a forced socket capacity.
fn crowded_smoke(name: &str, accounts: u32, tcp_capacity: Option<u32>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crosstalk-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let smoke = std::fs::read_to_string(repo_path("scenarios/smoke.toml")).expect("smoke");
    let mut text = smoke
        .replace(
            "accounts = [20, 40]",
            &format!("accounts = [{accounts}, {accounts}]"),
        )
        .replace("name = \"smoke\"", &format!("name = \"{name}\""));
    if let Some(capacity) = tcp_capacity {
        text = text.replace(
            "[network]\n",
            &format!("[network]\ntcp_capacity = {capacity}\n"),
        );
    }
    assert!(text.contains(&format!("accounts = [{accounts}, {accounts}]")));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("scenario written");
    path
}

fn crosstalk(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_crosstalk"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the crosstalk binary runs");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_world_past_the_networks_limits_is_one_line_and_exit_2() {
    let path = crowded_smoke("overcrowded", 200, Some(8));
    let file = path.to_str().expect("utf-8 path");
    for args in [
        vec!["run", file, "--seeds", "4..5"],
        vec!["replay", "--scenario", file, "--seed", "4"],
    ] {
        let (code, stdout, stderr) = crosstalk(&args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: exactly one line: {stderr}");
        assert!(
            lines[0]
                .starts_with("harness failure: scenario overcrowded seed 4: panicked at turmoil"),
            "{args:?}: {stderr}"
        );
        assert!(lines[0].contains("server socket buffer full"), "{stderr}");
        for noise in ["stack backtrace", "RUST_BACKTRACE", "thread '"] {
            assert!(
                !stdout.contains(noise) && !stderr.contains(noise),
                "{noise}: {stdout}{stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(path.parent().expect("scratch"));
}

#[test]
fn the_same_crowd_with_the_derived_capacity_runs_through() {
    let path = crowded_smoke("crowded", 200, None);
    let file = path.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = crosstalk(&["run", file, "--seeds", "4..5", "--quiet"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("result: PASS"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(path.parent().expect("scratch"));
}

/// `crosstalk plan ... | head -c 64`: the reader closes the pipe after 64
/// bytes of a plan of about 100 KB; the CLI must end quietly (killed by
/// SIGPIPE, as `cat` would be), never panic with a backtrace.
#[cfg(unix)]
#[test]
fn a_reader_that_stops_early_ends_the_cli_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let scenario = repo_path("scenarios/chaos.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crosstalk"))
        .args(["plan", "--scenario"])
        .arg(&scenario)
        .args(["--seed", "3"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the crosstalk binary runs");
    let mut head = [0u8; 64];
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_exact(&mut head)
        .expect("the plan's first bytes");
    // The read end is closed here (dropped above): the rest hits a broken pipe.
    let output = child.wait_with_output().expect("the CLI ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        head.starts_with(b"{"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}

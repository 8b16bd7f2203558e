//! `crosstalk bench`: how fast the harness runs, as ratios measured side by
//! side in one process (machines are shared and noisy; absolute times are
//! not comparable across runs, ratios are).
//!
//! It runs a scenario's seeds on one thread and reports seeds per second,
//! simulated seconds per wall second and SUT HTTP requests per wall second;
//! then, in the same process, the baseline: plain HTTP/1 keep-alive round
//! trips through turmoil at zero latency to a trivial axum handler served
//! exactly like the services are. The ratio says what share of raw turmoil
//! HTTP throughput the full world (services, redb, oracle) achieves.

use crate::net::{EPOCH_MS, SimConnector, SimListener};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use crosstalk_service::{HttpClient, Spawner};
use http_body_util::Full;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const BASELINE_HOST: &str = "echo";
const BASELINE_PORT: u16 = 7499;

/// Run `round_trips` keep-alive GETs through turmoil at zero latency.
/// Returns the number completed (the caller times the call).
pub fn baseline_round_trips(round_trips: u64) -> u64 {
    let mut sim = turmoil::Builder::new()
        .rng_seed(0)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_secs(24 * 3600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        .build();
    sim.host(BASELINE_HOST, || async {
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let listener = SimListener::bind(BASELINE_PORT).await?;
        crosstalk_service::serve_with(listener, router, Spawner::Local).await;
        Ok(())
    });
    let done = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counter = done.clone();
    sim.client("bench-client", async move {
        let client = HttpClient::new(
            Arc::new(SimConnector {
                host: BASELINE_HOST,
                port: BASELINE_PORT,
            }),
            Duration::from_secs(10),
            1,
        )
        .with_spawner(Spawner::Local);
        for _ in 0..round_trips {
            let request = http::Request::get("/ping").body(Full::new(Bytes::new()))?;
            let response = client.send(request).await?;
            if response.body().as_ref() != b"pong" {
                return Err("the echo server answered something else".into());
            }
            counter.set(counter.get() + 1);
        }
        Ok(())
    });
    // An error here leaves `done` short, which the report shows.
    let _ = sim.run();
    done.get()
}

/// One size of `bench --scale`: a copy of a scenario with exactly this many
/// accounts, one seed, and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleRow {
    pub accounts: u64,
    /// Devices the generated plan registers.
    pub devices: u64,
    pub wall_s: f64,
    /// CPU seconds (user + system) the run took: on a shared machine a
    /// steadier measure of work than wall time.
    pub cpu_s: f64,
    pub simulated_ms: u64,
    pub sut_requests: u64,
    /// Peak resident memory of the process that ran this size, in KiB
    /// (`VmHWM`; 0 where `/proc` does not tell).
    pub peak_kib: u64,
    pub passed: bool,
}

/// The marker a child process prints before its row (see [`ScaleRow::line`]).
pub const SCALE_ROW_MARK: &str = "scale-row";

impl ScaleRow {
    /// The row as one line a parent process parses back with [`ScaleRow::parse`].
    pub fn line(&self) -> String {
        format!(
            "{SCALE_ROW_MARK} {} {} {:.3} {:.3} {} {} {} {}",
            self.accounts,
            self.devices,
            self.wall_s,
            self.cpu_s,
            self.simulated_ms,
            self.sut_requests,
            self.peak_kib,
            u8::from(self.passed)
        )
    }

    pub fn parse(line: &str) -> Option<ScaleRow> {
        let mut f = line.strip_prefix(SCALE_ROW_MARK)?.split_whitespace();
        let mut next = || f.next();
        Some(ScaleRow {
            accounts: next()?.parse().ok()?,
            devices: next()?.parse().ok()?,
            wall_s: next()?.parse().ok()?,
            cpu_s: next()?.parse().ok()?,
            simulated_ms: next()?.parse().ok()?,
            sut_requests: next()?.parse().ok()?,
            peak_kib: next()?.parse().ok()?,
            passed: next()? == "1",
        })
    }

    /// CPU seconds per account.
    pub fn cpu_per_account(&self) -> f64 {
        self.cpu_s / self.accounts.max(1) as f64
    }

    /// Peak memory per account, in KiB.
    pub fn kib_per_account(&self) -> f64 {
        self.peak_kib as f64 / self.accounts.max(1) as f64
    }
}

/// A copy of `scenario` whose world has exactly `accounts` accounts.
pub fn scaled(scenario: &crate::scenario::Scenario, accounts: u64) -> crate::scenario::Scenario {
    let mut scaled = scenario.clone();
    scaled.name = format!("{}-{accounts}", scenario.name);
    scaled.world.accounts = crate::scenario::Range(accounts, accounts);
    scaled
}

/// Peak resident memory of this process so far, in KiB (`VmHWM` from
/// `/proc/self/status`; 0 where there is none). A benchmark fact only: it
/// never reaches a simulation.
pub fn peak_memory_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, in seconds, from
/// `/proc/self/stat` (0 where there is none). A benchmark fact only.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis are plain: utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / CLOCK_TICKS_PER_SECOND
}

/// `sysconf(_SC_CLK_TCK)` on every Linux the harness runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The `bench --scale` table: one row per size, with the per-account costs
/// as ratios to the first (smallest) row.
pub fn scale_table(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "accounts  devices   wall s    cpu s  sim/cpu  requests/cpu s  peak MiB  KiB/account  cpu/account  memory/account\n",
    );
    let Some(first) = rows.first() else {
        return out;
    };
    for row in rows {
        let cpu = row.cpu_s.max(1e-9);
        out.push_str(&format!(
            "{:>8}  {:>7}  {:>7.2}  {:>7.2}  {:>6.1}x  {:>14.0}  {:>8.1}  {:>11.1}  {:>10.2}x  {:>13.2}x{}\n",
            row.accounts,
            row.devices,
            row.wall_s,
            row.cpu_s,
            row.simulated_ms as f64 / 1000.0 / cpu,
            row.sut_requests as f64 / cpu,
            row.peak_kib as f64 / 1024.0,
            row.kib_per_account(),
            row.cpu_per_account() / first.cpu_per_account().max(1e-12),
            row.kib_per_account() / first.kib_per_account().max(1e-12),
            if row.passed { "" } else { "  (FAILED)" }
        ));
    }
    out
}

/// The largest world `bench --scale` generates.
pub const MAX_SCALE_ACCOUNTS: u64 = 20_000;

/// Run one size here and measure it (wall time from the CLI's clock, peak
/// memory of this process).
pub fn run_scale_row(
    scenario: &crate::scenario::Scenario,
    accounts: u64,
    seed: u64,
) -> Result<ScaleRow, crate::guard::HarnessFailure> {
    let plan = crate::plan::Plan::generate(&scaled(scenario, accounts), seed);
    let devices = plan.accounts.iter().map(|a| u64::from(a.devices)).sum();
    let started = crate::cli::wall_clock();
    let cpu_before = cpu_seconds();
    let outcome = crate::guard::run_guarded(&plan)?;
    let cpu_s = cpu_seconds() - cpu_before;
    let wall_s = started.elapsed().as_secs_f64();
    // A size that failed says why (the row only says that it did).
    if let Some(v) = outcome.violations.first() {
        eprintln!(
            "{accounts} accounts: {} violation(s), the first: {:?} at {} ms: {}",
            outcome.violations.len(),
            v.invariant,
            v.at_ms,
            v.detail
        );
    }
    for error in outcome.infra_errors.iter().take(3) {
        eprintln!("{accounts} accounts: {error}");
    }
    Ok(ScaleRow {
        accounts,
        devices,
        wall_s,
        cpu_s,
        simulated_ms: outcome.simulated_ms,
        sut_requests: outcome.sut_requests,
        peak_kib: peak_memory_kib(),
        passed: outcome.passed(),
    })
}

/// Run one size in a child process of this same executable and read its row.
pub fn scale_row_in_child(
    path: &std::path::Path,
    accounts: u64,
    seed: u64,
) -> Result<ScaleRow, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let output = std::process::Command::new(exe)
        .arg("bench")
        .arg("--scenario")
        .arg(path)
        .args([
            "--scale",
            "--in-process",
            "--accounts",
            &accounts.to_string(),
        ])
        .args(["--seed", &seed.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("starting the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(ScaleRow::parse)
        .ok_or_else(|| format!("the child printed no row ({})", output.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_row_survives_its_line() {
        let row = ScaleRow {
            accounts: 1000,
            devices: 2500,
            wall_s: 12.5,
            cpu_s: 11.0,
            simulated_ms: 780_000,
            sut_requests: 91_000,
            peak_kib: 204_800,
            passed: true,
        };
        assert_eq!(ScaleRow::parse(&row.line()), Some(row));
        assert_eq!(ScaleRow::parse("something else"), None);
    }

    #[test]
    fn the_table_states_per_account_cost_relative_to_the_smallest_size() {
        let row = |accounts, cpu_s, peak_kib| ScaleRow {
            accounts,
            devices: accounts * 2,
            wall_s: cpu_s * 1.5,
            cpu_s,
            simulated_ms: 100_000,
            sut_requests: 1000,
            peak_kib,
            passed: true,
        };
        let table = scale_table(&[row(100, 1.0, 10_240), row(1000, 20.0, 51_200)]);
        let last = table.lines().last().unwrap();
        // 20 s for 10x the accounts is 2x the time per account; 50 MiB for
        // 10x the accounts is half the memory per account.
        assert!(last.contains("2.00x"), "{table}");
        assert!(last.contains("0.50x"), "{table}");
    }

    #[test]
    fn a_scaled_copy_has_exactly_the_asked_accounts() {
        let smoke = crate::scenario::Scenario::parse("name = \"s\"").unwrap();
        let big = scaled(&smoke, 321);
        assert_eq!(big.world.accounts, crate::scenario::Range(321, 321));
        let plan = crate::plan::Plan::generate(&big, 1);
        assert_eq!(plan.accounts.len(), 321);
    }
}

//! A failure as a page you can look at: one self-contained HTML file per
//! failing run (inline CSS, JavaScript and SVG; nothing fetched).
//!
//! The page draws a timeline with a lane per person and per host: every
//! request and answer of the trace as a tick on its person's lane, host
//! crashes and network faults from the plan as bands, fault events of the
//! trace as marks, the first violation as a line, and its provenance chain
//! (capture → store → job, ticket or link → receiver) as arrows from lane
//! to lane. A filter narrows the lanes to the people involved or to any
//! text. The run's data is embedded as JSON (with `<`, `>` and `&` escaped
//! so no text can close the script element) and every string is put into
//! the page with `textContent` or as an attribute value, never as markup.

use crate::plan::Plan;
use crate::world::RunOutcome;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Write the report of `outcome` (a run of `plan`) into `dir` as
/// `<name>.html`; the path written.
pub fn write_report(
    dir: &Path,
    name: &str,
    plan: &Plan,
    outcome: &RunOutcome,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.html"));
    std::fs::write(&path, render(plan, outcome))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// The whole page.
pub fn render(plan: &Plan, outcome: &RunOutcome) -> String {
    let data = script_safe(&report_data(plan, outcome).to_string());
    let title = html_escape(&format!(
        "crosstalk: {} seed {} failed",
        plan.scenario, plan.seed
    ));
    TEMPLATE
        .replace("__TITLE__", &title)
        .replace("__DATA__", &data)
}

/// Text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element: `<`, `>` and `&` (which
/// only occur inside strings) become `\u` escapes.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Everything the page draws, as JSON.
fn report_data(plan: &Plan, outcome: &RunOutcome) -> Value {
    let people: Vec<Value> = plan
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"lane": format!("p{i}"), "email": a.email, "devices": a.devices}))
        .collect();
    let mut hosts = vec!["store".to_string(), "export".to_string()];
    hosts.extend((0..plan.worker_hosts).map(|w| format!("worker-{w}")));
    hosts.extend((0..plan.client_hosts.max(1)).map(|c| format!("client-{c}")));
    if plan.agent.is_some() {
        hosts.push("agent".to_string());
    }
    let events: Vec<Value> = outcome
        .trace_lines
        .iter()
        .filter_map(|line| trace_event(line, &hosts))
        .collect();
    let mut bands: Vec<Value> = plan
        .crashes
        .iter()
        .map(|c| {
            let how = match c.mid_write_ops {
                _ if c.sync_error => {
                    format!("{}'s next sync fails, then it loses power", c.host)
                }
                Some(n) => format!("{} loses power at its write {n} from then on", c.host),
                None => format!("{} crashes", c.host),
            };
            json!({"lanes": [c.host], "from": c.at_ms, "to": c.at_ms + c.downtime_ms,
                   "kind": "crash", "label": format!("{how}, down {} ms", c.downtime_ms)})
        })
        .collect();
    bands.extend(plan.net_faults.iter().map(|f| {
        json!({"lanes": [f.a, f.b], "from": f.at_ms, "to": f.at_ms + f.duration_ms,
               "kind": "net", "label": format!("{:?} {} -> {} for {} ms", f.kind, f.a, f.b, f.duration_ms)})
    }));
    let violations: Vec<Value> = outcome
        .violations
        .iter()
        .map(|v| {
            json!({
                "invariant": v.invariant.short(),
                "describe": v.invariant.describe(),
                "at_ms": v.at_ms,
                "nonce": v.nonce.map(|n| format!("{n:016x}")),
                "true_owner": v.true_owner,
                "receiver": v.receiver,
                "detail": v.detail,
                "chain": provenance_chain(plan, v, &events),
            })
        })
        .collect();
    json!({
        "scenario": plan.scenario,
        "seed": plan.seed,
        "planted": plan.planted,
        "trace_hash": outcome.trace_hash,
        "trace_events": outcome.trace_events,
        "simulated_ms": outcome.simulated_ms,
        "active_ms": plan.active_ms,
        "people": people,
        "hosts": hosts,
        "events": events,
        "bands": bands,
        "violations": violations,
        "infra_errors": outcome.infra_errors,
    })
}

/// One trace line (`"{at_ms:>9} ms  {event}"`) as a timeline event: its
/// lane (a person `pN`, a host named in a fault or service event, or the
/// agent) and its answer's status class, if it is a request.
fn trace_event(line: &str, hosts: &[String]) -> Option<Value> {
    let (at, event) = line.trim_start().split_once(" ms  ")?;
    let at_ms: u64 = at.trim().parse().ok()?;
    let first = event.split_whitespace().next().unwrap_or("");
    let person = first
        .strip_prefix('p')
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let (lane, kind) = if person.is_some() {
        let kind = if event.contains(" -> ") {
            "request"
        } else {
            "note"
        };
        (first.to_string(), kind)
    } else if first == "agent" {
        ("agent".to_string(), "agent")
    } else {
        let host = hosts
            .iter()
            .filter(|h| *h != "agent")
            .find(|h| mentions(event, h))
            .cloned()
            .unwrap_or_else(|| "store".to_string());
        (host, "fault")
    };
    let status = event
        .rsplit_once(" -> ")
        .and_then(|(_, answer)| answer.split_whitespace().next())
        .map(str::to_string);
    Some(json!({"t": at_ms, "lane": lane, "kind": kind, "status": status, "text": event}))
}

/// Whether `text` names `host` as a whole word (`worker-1` is not `worker-10`).
fn mentions(text: &str, host: &str) -> bool {
    text.match_indices(host).any(|(at, _)| {
        let after = text[at + host.len()..].chars().next();
        let before = text[..at].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The violation's provenance as steps on lanes: the detail split at its
/// commas and semicolons, each step placed on a lane — the export
/// service's for a step "via" an export, ticket or link, else the host it
/// was stored on, else the person (by email) or host it names, else the
/// previous step's — and at the time it gives ("at N ms"), else at the
/// first request for the object it names by id, else at the previous
/// step's; the receiver at the violation's time closes it.
fn provenance_chain(plan: &Plan, v: &crate::check::Violation, events: &[Value]) -> Vec<Value> {
    let person_lane = |text: &str| {
        plan.accounts
            .iter()
            .position(|a| mentions(text, &a.email))
            .map(|i| format!("p{i}"))
    };
    let mut hosts = vec!["store".to_string(), "export".to_string()];
    hosts.extend((0..plan.worker_hosts).map(|w| format!("worker-{w}")));
    let owner_lane = v.true_owner.as_deref().and_then(person_lane);
    let mut lane = owner_lane.unwrap_or_else(|| "store".to_string());
    let mut t = 0;
    let mut steps = Vec::new();
    for part in v.detail.split([';', ',']).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        // An export job, ticket or link carries it to the receiver: that
        // step is the export service's.
        let via_export = ["via export", "via ticket", "via link", "job "]
            .iter()
            .any(|w| part.contains(w))
            .then(|| "export".to_string());
        let stored_on = part
            .strip_prefix("stored on host ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let next = via_export
            .or(stored_on)
            .or_else(|| person_lane(part))
            .or_else(|| hosts.iter().find(|h| mentions(part, h)).cloned());
        if let Some(next) = next {
            lane = next;
        }
        match time_in(part).or_else(|| time_of_id(part, events)) {
            Some(ms) => t = ms,
            None if steps.is_empty() => t = first_time_on(&lane, events),
            None => {}
        }
        steps.push(json!({"lane": lane, "t": t, "label": part}));
    }
    let receiver_lane = v.receiver.as_deref().and_then(person_lane);
    if let Some(receiver) = receiver_lane {
        let label = format!(
            "received by {} at {} ms",
            v.receiver.clone().unwrap_or_default(),
            v.at_ms
        );
        steps.push(json!({"lane": receiver, "t": v.at_ms, "label": label}));
    }
    steps
}

/// When a step that names an export, recording or ticket by id (`exp-3`)
/// without a time happened: the first event that asks for that object
/// (`/exports/3`).
fn time_of_id(text: &str, events: &[Value]) -> Option<u64> {
    let paths = [
        ("exp-", "/exports/"),
        ("rec-", "/recordings/"),
        ("ticket-", "/tickets/"),
    ];
    let needle = text.split_whitespace().find_map(|word| {
        paths.iter().find_map(|(prefix, path)| {
            let id = word.strip_prefix(prefix)?;
            id.chars()
                .all(|c| c.is_ascii_digit())
                .then(|| format!("{path}{id}"))
        })
    })?;
    events
        .iter()
        .find(|e| {
            e["text"].as_str().is_some_and(|t| {
                t.match_indices(needle.as_str()).any(|(at, _)| {
                    !t[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
        })
        .and_then(|e| e["t"].as_u64())
}

/// The time of the first event on `lane` (0 if it has none).
fn first_time_on(lane: &str, events: &[Value]) -> u64 {
    events
        .iter()
        .find(|e| e["lane"] == lane)
        .and_then(|e| e["t"].as_u64())
        .unwrap_or(0)
}

/// The first "N ms" time in `text`.
fn time_in(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches([',', ';', ')']) == "ms" && w[0].parse::<u64>().is_ok())
        .and_then(|w| w[0].parse().ok())
}

const TEMPLATE: &str = include_str!("report_html.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(
            html_escape("<b a=\"1\">&'"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
        let json = script_safe(&json!({"x": "</script><img src=x>"}).to_string());
        assert!(!json.contains("</script"));
        assert!(!json.contains('<'));
        let back: Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["x"], "</script><img src=x>");
    }

    #[test]
    fn trace_lines_become_lane_events() {
        let hosts = vec![
            "store".to_string(),
            "export".to_string(),
            "worker-1".to_string(),
        ];
        let e = trace_event("    30 ms  p12 POST /v1/accounts -> 201 791827a7", &hosts).unwrap();
        assert_eq!(e["lane"], "p12");
        assert_eq!(e["status"], "201");
        assert_eq!(e["t"], 30);
        let f = trace_event("  9000 ms  fault: worker-1 restarted", &hosts).unwrap();
        assert_eq!(f["lane"], "worker-1");
        assert_eq!(f["kind"], "fault");
        assert!(!mentions("worker-10 down", "worker-1"));
    }

    #[test]
    fn times_are_read_from_provenance_steps() {
        assert_eq!(time_in("acknowledged at 11380 ms"), Some(11380));
        assert_eq!(time_in("stored on host store as rec-5"), None);
        let events = vec![
            json!({"t": 5, "lane": "p0", "text": "p0 GET /v1/exports/12 -> 200 aa"}),
            json!({"t": 9, "lane": "p0", "text": "p0 GET /v1/exports/1 -> 200 bb"}),
        ];
        assert_eq!(time_of_id("exp-1 of someone", &events), Some(9));
        assert_eq!(time_of_id("exp-7 of someone", &events), None);
    }
}

//! The ratio report printed after the criterion groups: it reads the estimates criterion wrote in
//! this run and sets each store operation beside its baseline and its target.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::probes::{CostSplit, LISTED, RoundTrips, TOUCH_BATCH, TOUCHED};
use crate::world::Op;

/// A benchmark this run registered, and how many operations one criterion iteration runs.
#[derive(Clone, Debug)]
pub struct Bench {
    pub group: String,
    pub function: String,
    pub parameter: String,
    pub ops_per_iter: u64,
}

/// One criterion estimate, per operation.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    /// The median time of one operation, in ns.
    ns: f64,
    /// Half the width of criterion's 95% confidence interval of that median, relative to it.
    spread: f64,
}

/// Where criterion keeps its results, found the way criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_cargo = std::env::var_os("CARGO").and_then(|cargo| {
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(PathBuf::from(metadata["target_directory"].as_str()?))
    });
    from_cargo
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// The results of the run that started at `started`.
pub struct Estimates {
    home: PathBuf,
    started: SystemTime,
    benches: Vec<Bench>,
}

impl Estimates {
    pub fn new(started: SystemTime, benches: Vec<Bench>) -> Self {
        Estimates {
            home: criterion_home(),
            started,
            benches,
        }
    }

    /// The estimate of one benchmark, when it ran in this run.
    fn get(&self, group: &str, function: &str, parameter: &str) -> Option<Estimate> {
        let bench = self
            .benches
            .iter()
            .find(|b| b.group == group && b.function == function && b.parameter == parameter)?;
        let path = self
            .home
            .join(&bench.group)
            .join(&bench.function)
            .join(&bench.parameter)
            .join("new")
            .join("estimates.json");
        let (median, lower, upper) = read_median(&path, self.started)?;
        Some(Estimate {
            ns: median / bench.ops_per_iter as f64,
            spread: (upper - lower) / 2.0 / median,
        })
    }
}

/// The median point estimate and its confidence bounds, from a file written after `started`.
fn read_median(path: &Path, started: SystemTime) -> Option<(f64, f64, f64)> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    if modified < started {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    let median = &estimates["median"];
    let bounds = &median["confidence_interval"];
    Some((
        median["point_estimate"].as_f64()?,
        bounds["lower_bound"].as_f64()?,
        bounds["upper_bound"].as_f64()?,
    ))
}

/// A duration in nanoseconds, in the unit that reads best.
fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Operations per second at `ns` per operation.
fn rate(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if per_s >= 1e6 {
        format!("{:.2}M/s", per_s / 1e6)
    } else {
        format!("{:.1}k/s", per_s / 1e3)
    }
}

/// Everything the report prints beyond the criterion estimates.
pub struct Context {
    pub redis: bool,
    pub machine: Vec<String>,
    pub round_trips: Option<RoundTrips>,
    pub splits: Vec<CostSplit>,
    /// The write beside its comparisons in interleaved rounds, at 1, 32 and 256 tasks.
    pub interleaved: Vec<crate::rounds::Rounds>,
}

/// Throughput of a memory operation: at least half the map's, i.e. at most twice its time.
const MEMORY_MIN_RATIO: f64 = 0.5;
/// The Redis targets at 32 tasks: writes at least 0.8x of their raw baselines, reads 0.9x.
const REDIS_WRITE_MIN_RATIO: f64 = 0.8;
const REDIS_READ_MIN_RATIO: f64 = 0.9;

/// The write beside tower-sessions: at least as fast at one task and at 256, 1.3x at 32.
fn peer_min_ratio(tasks: usize) -> f64 {
    if tasks == 32 { 1.3 } else { 1.0 }
}

/// The target of a Redis operation beside its raw baseline, if it has one.
fn redis_target(op: Op, tasks: usize) -> Option<f64> {
    if tasks != 32 {
        return None;
    }
    match op {
        Op::SetSessionData
        | Op::UpdateSessionData
        | Op::DeleteSessionData
        | Op::ClearSessionData
        | Op::Touch => Some(REDIS_WRITE_MIN_RATIO),
        Op::GetSessionData => Some(REDIS_READ_MIN_RATIO),
        _ => None,
    }
}
const TOUCH_MAX_MS: f64 = 50.0;
const LIST_MAX_MS: f64 = 10.0;

/// One line of a comparison table.
struct Row<'a> {
    op: &'a str,
    store: &'a str,
    tasks: usize,
    ours: Option<Estimate>,
    base: Option<Estimate>,
    baseline: &'a str,
    /// The least acceptable ratio, for rows with a target.
    target: Option<f64>,
}

/// The result of a row with a target, for the summary.
struct Verdict {
    line: String,
    met: bool,
}

fn header(out: &mut String, baseline: &str, baseline_is: &str) {
    let _ = writeln!(
        out,
        "{:<20} {:<6} {:>5}  {:>21}  {:>21}  {:<34} {:>6} {:>5}  {:<8} result",
        "operation", "store", "tasks", "ours", baseline, baseline_is, "ratio", "+/-", "target",
    );
}

/// Writes a row; returns its verdict when it has a target.
fn row(out: &mut String, row: &Row<'_>) -> Option<Verdict> {
    let cell = |e: Option<Estimate>| {
        e.map_or_else(
            || "not run".to_owned(),
            |e| format!("{} ({})", time(e.ns), rate(e.ns)),
        )
    };
    // Throughput ratio, and its uncertainty from the two estimates.
    let ratio = match (row.ours, row.base) {
        (Some(ours), Some(base)) => Some((base.ns / ours.ns, ours.spread + base.spread)),
        _ => None,
    };
    let mut verdict = None;
    let (target_cell, result) = match (row.target, ratio) {
        (Some(target), Some((ratio, noise))) => {
            let met = ratio >= target;
            let mut result = if met {
                "met".to_owned()
            } else {
                format!("MISSED by {:.0}%", (1.0 - ratio / target) * 100.0)
            };
            if (ratio / target - 1.0).abs() <= noise {
                result.push_str(" (within noise)");
            }
            verdict = Some(Verdict {
                line: format!(
                    "{} {} @{}: {ratio:.2}x of {} (target >= {target:.2}x): {result}",
                    row.store, row.op, row.tasks, row.baseline
                ),
                met,
            });
            (format!(">= {target:.2}x"), result)
        }
        (Some(target), None) => (format!(">= {target:.2}x"), "no estimate".to_owned()),
        (None, _) => ("-".to_owned(), String::new()),
    };
    let _ = writeln!(
        out,
        "{:<20} {:<6} {:>5}  {:>21}  {:>21}  {:<34} {:>6} {:>5}  {:<8} {}",
        row.op,
        row.store,
        row.tasks,
        cell(row.ours),
        cell(row.base),
        row.baseline,
        ratio.map_or_else(|| "-".to_owned(), |(r, _)| format!("{r:.2}x")),
        ratio.map_or_else(String::new, |(_, noise)| format!("{:.0}%", noise * 100.0)),
        target_cell,
        result
    );
    verdict
}

/// Writes a scale probe against its ceiling; returns its verdict when it ran.
fn probe_row(
    out: &mut String,
    label: &str,
    estimate: Option<Estimate>,
    max_ms: f64,
) -> Option<Verdict> {
    let (value, result, met) = match estimate {
        Some(e) => {
            let ms = e.ns / 1e6;
            let met = ms <= max_ms;
            let mut result = if met {
                "met".to_owned()
            } else {
                format!("MISSED by {:.0}%", (ms / max_ms - 1.0) * 100.0)
            };
            if (ms / max_ms - 1.0).abs() <= e.spread {
                result.push_str(" (within noise)");
            }
            (
                format!("{ms:.2} ms +/-{:.0}%", e.spread * 100.0),
                result,
                Some(met),
            )
        }
        None => ("not run".to_owned(), "no estimate".to_owned(), None),
    };
    let _ = writeln!(
        out,
        "{label:<66} {value:>18}  {:<18} {result}",
        format!("target <= {max_ms:.0} ms")
    );
    met.map(|met| Verdict {
        line: format!("{label}: {value} (target <= {max_ms:.0} ms): {result}"),
        met,
    })
}

/// The report, as plain text.
pub fn render(estimates: &Estimates, context: &Context) -> String {
    let mut out = String::new();
    let mut verdicts = Vec::new();
    let rule = "=".repeat(120);
    let _ = writeln!(
        out,
        "\n{rule}\nws-session store benchmarks: ratio report\n{rule}"
    );
    for line in &context.machine {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "Times: criterion's median per operation (at 32 tasks: the median time of a batch of 256 \
         calls, 8 per task, / 256).\nratio = throughput of ours / throughput of the baseline \
         (1.00x = as fast; the memory target 0.50x = at most 2x the map's time).\n+/- = the two \
         medians' 95% confidence half-widths added; \"within noise\" = the target lies inside that band."
    );

    let _ = writeln!(
        out,
        "\n-- Store operations beside their raw baselines, same run"
    );
    header(&mut out, "baseline", "baseline is");
    let mut stores = vec![("memory", "memory")];
    if context.redis {
        stores.push(("redis", "Redis"));
    }
    for (group_store, store_label) in stores {
        for tasks in [1usize, 32] {
            let group = group_name(group_store, tasks);
            for op in Op::ALL {
                let (baseline, target) = if group_store == "memory" {
                    (op.map_baseline(), Some(MEMORY_MIN_RATIO))
                } else {
                    (op.redis_baseline(), redis_target(op, tasks))
                };
                verdicts.extend(row(
                    &mut out,
                    &Row {
                        op: op.name(),
                        store: store_label,
                        tasks,
                        ours: estimates.get(&group, op.name(), "ours"),
                        base: estimates.get(&group, op.name(), "raw"),
                        baseline,
                        target,
                    },
                ));
            }
        }
    }
    if context.redis {
        let _ = writeln!(
            out,
            "   No targets: the Redis baseline above checks a connection out only to clone its \
             multiplexed handle, as the store\n   does; below, the baseline holds its checked-out \
             connection for the round trip (bb8's usual get-and-hold)"
        );
        let group = group_name("redis", 32);
        for op in [Op::SetSessionData, Op::GetSessionData] {
            let baseline = format!("{}, connection held", op.redis_baseline());
            row(
                &mut out,
                &Row {
                    op: op.name(),
                    store: "Redis",
                    tasks: 32,
                    ours: estimates.get(&group, op.name(), "ours"),
                    base: estimates.get(&group, op.name(), "raw_held"),
                    baseline: &baseline,
                    target: None,
                },
            );
        }
    } else {
        let _ = writeln!(out, "Redis: not run (no redis-server on this machine)");
        summary(&mut out, &verdicts);
        return out;
    }

    let _ = writeln!(
        out,
        "\n-- Persisting one value from a handler: RedisStore::set_session_data beside tower-sessions \
         0.14 Session::insert + save\n   (tower-sessions-redis-store 0.16, fred pool; same Redis, same \
         run; each task keeps one loaded session)"
    );
    header(&mut out, "peer", "peer is");
    for tasks in crate::PEER_TASKS {
        let group = group_name("peer", tasks);
        verdicts.extend(row(
            &mut out,
            &Row {
                op: "set_session_data",
                store: "Redis",
                tasks,
                ours: estimates.get(&group, "set_session_data", "ours"),
                base: estimates.get(&group, "insert_save", "tower_sessions"),
                baseline: "tower-sessions insert+save",
                target: Some(peer_min_ratio(tasks)),
            },
        ));
    }

    bounds(&mut out, estimates);
    crate::rounds::render(&mut out, &context.interleaved);

    let _ = writeln!(out, "\n-- Scale probes (Redis)");
    let tick_label = format!(
        "touch {TOUCHED} live sessions, one refresh tick ({} calls of {TOUCH_BATCH})",
        TOUCHED / TOUCH_BATCH
    );
    let probes = [
        (tick_label, ("touch_10000", "batches_of_1000"), TOUCH_MAX_MS),
        (
            format!("touch {TOUCHED} live sessions, one call"),
            ("touch_10000", "one_call"),
            TOUCH_MAX_MS,
        ),
        (
            format!("get_user_sessions, user with {LISTED} sessions"),
            ("get_user_sessions_1000", "one_call"),
            LIST_MAX_MS,
        ),
    ];
    for (label, (function, parameter), max_ms) in probes {
        let estimate = estimates.get("redis_scale", function, parameter);
        verdicts.extend(probe_row(&mut out, &label, estimate, max_ms));
    }
    if let Some(trips) = &context.round_trips {
        verdicts.push(round_trips(&mut out, trips));
    }
    splits(&mut out, &context.splits);
    summary(&mut out, &verdicts);
    out
}

/// How near the write is to what any script-based write costs, and how near those bounds come
/// to the targets' baselines. No targets: these rows show which targets no script could meet.
fn bounds(out: &mut String, estimates: &Estimates) {
    let _ = writeln!(
        out,
        "\n-- Bounds of any script-based write (no targets), same groups as above\n   empty script \
         = EVALSHA of `return 1` with set_session_data's key and arguments; minimal write = one \
         script that\n   refuses a missing session, writes the value and last-active and \
         refreshes the TTL (no key limit, no user set)"
    );
    header(out, "baseline", "baseline is");
    let redis = group_name("redis", 32);
    let mut rows = vec![
        (
            "empty script",
            32,
            &redis,
            ("set_session_data", "empty_script"),
            ("set_session_data", "raw"),
            "HSET",
        ),
        (
            "minimal write",
            32,
            &redis,
            ("set_session_data", "minimal_write"),
            ("set_session_data", "raw"),
            "HSET",
        ),
        (
            "set_session_data",
            32,
            &redis,
            ("set_session_data", "ours"),
            ("set_session_data", "minimal_write"),
            "minimal write script",
        ),
    ];
    let peers = [group_name("peer", 1), group_name("peer", 32)];
    for (group, tasks) in peers.iter().zip([1, 32]) {
        for (label, parameter) in [
            ("empty script", "empty_script"),
            ("minimal write", "minimal_write"),
        ] {
            rows.push((
                label,
                tasks,
                group,
                ("set_session_data", parameter),
                ("insert_save", "tower_sessions"),
                "tower-sessions insert+save",
            ));
        }
    }
    for (op, tasks, group, (ours_fn, ours_param), (base_fn, base_param), baseline) in rows {
        row(
            out,
            &Row {
                op,
                store: "Redis",
                tasks,
                ours: estimates.get(group, ours_fn, ours_param),
                base: estimates.get(group, base_fn, base_param),
                baseline,
                target: None,
            },
        );
    }
}

/// Every target measured in this run, one line each, misses first.
fn summary(out: &mut String, verdicts: &[Verdict]) {
    let met = verdicts.iter().filter(|v| v.met).count();
    let _ = writeln!(
        out,
        "\n-- Targets measured in this run: {met} of {} met, {} missed",
        verdicts.len(),
        verdicts.len() - met
    );
    for verdict in verdicts.iter().filter(|v| !v.met) {
        let _ = writeln!(out, "MISSED  {}", verdict.line);
    }
    for verdict in verdicts.iter().filter(|v| v.met) {
        let _ = writeln!(out, "met     {}", verdict.line);
    }
}

pub fn group_name(store: &str, tasks: usize) -> String {
    if tasks == 1 {
        format!("{store}_1_task")
    } else {
        format!("{store}_{tasks}_tasks")
    }
}

fn counts(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(name, n)| format!("{} x{n}", name.to_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one `get_user_sessions` call sent over the network, and what its script ran.
fn round_trips(out: &mut String, trips: &RoundTrips) -> Verdict {
    let total = trips.network_total();
    let met = total == 1;
    let label = format!("get_user_sessions({LISTED}), commands sent over the network (MONITOR)");
    let result = format!(
        "{} ({})",
        if met { "met" } else { "MISSED" },
        counts(&trips.network)
    );
    let _ = writeln!(out, "{label:<66} {total:>18}  {:<18} {result}", "target 1");
    let _ = writeln!(
        out,
        "    returned {} sessions; run inside the script: {}\n    INFO commandstats deltas over the \
         call: {}",
        trips.returned,
        counts(&trips.in_scripts),
        counts(&trips.commandstats),
    );
    Verdict {
        line: format!("{label}: {total} (target 1): {result}"),
        met,
    }
}

/// Where the time of a call goes: this process, the server, the commands Redis ran.
fn splits(out: &mut String, splits: &[CostSplit]) {
    if splits.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n-- Where the time goes (no targets): many calls in a row, per call: wall time, CPU of \
         this process (all threads)\n   and of redis-server, and INFO commandstats calls (a \
         script's inner commands included)"
    );
    let _ = writeln!(
        out,
        "{:<46} {:>6} {:>10} {:>10} {:>10}  Redis commands per call",
        "calls", "n", "wall", "our CPU", "Redis CPU"
    );
    for split in splits {
        let calls = split.calls as f64;
        let total: u64 = split.commands.values().sum();
        let each: Vec<String> = split
            .commands
            .iter()
            .map(|(name, n)| format!("{} {}", name.to_uppercase(), per_call(*n as f64 / calls)))
            .collect();
        let _ = writeln!(
            out,
            "{:<46} {:>6} {:>10} {:>10} {:>10}  {} ({})",
            split.label,
            split.calls,
            time(split.wall_ns),
            time(split.client_cpu_ns),
            time(split.server_cpu_ns),
            per_call(total as f64 / calls),
            each.join(", "),
        );
    }
}

/// A count per call: whole when it is whole, else with the decimals it needs.
fn per_call(n: f64) -> String {
    if (n - n.round()).abs() < 0.0005 {
        format!("{n:.0}")
    } else if n < 0.1 {
        format!("{n:.3}")
    } else {
        format!("{n:.2}")
    }
}

//! Run parameters, collected numbers, and the printed table.

use std::collections::HashMap;
use std::time::Duration;

use crate::Hold;
use crate::client::Run;
use crate::server::Kind;

/// The timed scenarios (hold is measured apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    Churn,
    Ops,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Churn => "churn",
            Scenario::Ops => "ops",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Scenario::Churn => "cycles/s",
            Scenario::Ops => "ops/s",
        }
    }

    /// The least memory/bare and redis/bare ratios the scenario should reach. (For `ops` on
    /// Redis: the target of the Redis writes' group commit, 0.65x.)
    fn targets(self) -> (f64, f64) {
        match self {
            Scenario::Churn => (0.85, 0.50),
            Scenario::Ops => (0.90, 0.65),
        }
    }
}

/// The most resident memory an idle socket may cost with `MemoryStore`, over bare.
const HOLD_EXTRA_TARGET: f64 = 2048.0;

/// How long and how hard the harness pushes.
#[derive(Debug, Clone)]
pub struct Params {
    /// Under `cargo bench` (`--bench`), as opposed to a smoke run.
    pub bench: bool,
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub clients: usize,
    pub hold: usize,
    pub hold_rounds: usize,
}

impl Params {
    /// The defaults for a bench run or a smoke run, with environment overrides.
    pub fn new(bench: bool) -> Params {
        let (rounds, secs, hold, hold_rounds) = if bench {
            (7, 2.0, 10_000, 3)
        } else {
            (1, 0.3, 200, 1)
        };
        let secs = env("WS_LOAD_SECS", secs);
        Params {
            bench,
            rounds: env("WS_LOAD_ROUNDS", rounds).max(1),
            duration: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64((secs / 3.0).max(0.1)),
            clients: env("WS_LOAD_CLIENTS", 32).max(1),
            hold: env("WS_LOAD_HOLD", hold).max(1),
            hold_rounds: env("WS_LOAD_HOLD_ROUNDS", hold_rounds).max(1),
        }
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a valid number")),
        Err(_) => default,
    }
}

/// Every measurement, by scenario and server.
#[derive(Debug, Default)]
pub struct Results {
    rates: HashMap<(Scenario, Kind), Vec<f64>>,
    /// Server CPU per cycle or operation, in microseconds.
    server_cpu: HashMap<(Scenario, Kind), Vec<f64>>,
    /// Redis server CPU per cycle or operation, in microseconds.
    redis_cpu: HashMap<(Scenario, Kind), Vec<f64>>,
    errors: HashMap<(Scenario, Kind), (u64, Option<String>)>,
    holds: HashMap<Kind, Vec<f64>>,
    hold_problems: Vec<String>,
}

impl Results {
    pub fn add_run(&mut self, scenario: Scenario, kind: Kind, run: &Run) {
        self.rates
            .entry((scenario, kind))
            .or_default()
            .push(run.per_second());
        self.server_cpu
            .entry((scenario, kind))
            .or_default()
            .push(run.server_cpu_per_op());
        if let Some(cpu) = run.redis_cpu_per_op() {
            self.redis_cpu
                .entry((scenario, kind))
                .or_default()
                .push(cpu);
        }
        let errors = self.errors.entry((scenario, kind)).or_default();
        errors.0 += run.errors;
        if errors.1.is_none() {
            errors.1.clone_from(&run.first_error);
        }
    }

    pub fn add_hold(&mut self, kind: Kind, hold: &Hold) {
        self.holds.entry(kind).or_default().push(hold.per_socket());
        if hold.failed > 0 || hold.unclean_closes > 0 {
            self.hold_problems.push(format!(
                "hold {}: {} sockets failed to open (first error: {}), {} did not close cleanly",
                kind.name(),
                hold.failed,
                hold.first_error.as_deref().unwrap_or("-"),
                hold.unclean_closes
            ));
        }
    }

    fn rate(&self, scenario: Scenario, kind: Kind) -> Option<f64> {
        self.rates.get(&(scenario, kind)).map(|all| median(all))
    }

    /// The median of the per-round ratios `kind`/bare. A round runs the servers back to back,
    /// so each ratio compares them under nearly the same machine load; the median of those
    /// resists drifts in the load that the ratio of the medians does not.
    fn paired_ratio(&self, scenario: Scenario, kind: Kind) -> Option<f64> {
        self.paired_ratio_to(scenario, kind, Kind::Bare)
    }

    /// [`paired_ratio`](Self::paired_ratio) of `kind` over `base`.
    fn paired_ratio_to(&self, scenario: Scenario, kind: Kind, base: Kind) -> Option<f64> {
        let base = self.rates.get(&(scenario, base))?;
        let other = self.rates.get(&(scenario, kind))?;
        let ratios: Vec<f64> = base.iter().zip(other).map(|(b, o)| o / b).collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }

    fn hold(&self, kind: Kind) -> Option<f64> {
        self.holds.get(&kind).map(|all| median(all))
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The machine, the parameters and the limits, before anything runs.
pub fn header(params: &Params, fd_limit: u64, redis_url: Option<&str>) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    println!("ws-session load: bare axum WebSocket vs chat router + MemoryStore vs + RedisStore");
    if !params.bench {
        println!("SMOKE RUN (not under `cargo bench`): the numbers below mean nothing");
    }
    println!(
        "machine: nproc {nproc}, CPU {model}, load average {}",
        loadavg()
    );
    println!(
        "parameters: {} rounds x {:.1} s per timed scenario and server (warm-up {:.1} s), \
         {} clients; hold {} idle sockets x {} rounds in fresh server processes; \
         medians over rounds; loopback; open-file limit {fd_limit}",
        params.rounds,
        params.duration.as_secs_f64(),
        params.warmup.as_secs_f64(),
        params.clients,
        params.hold,
        params.hold_rounds
    );
    println!(
        "servers: child processes, 127.0.0.1, TCP_NODELAY, a 4 KiB read buffer (as the chat example); clients: \
         tokio-tungstenite with a 4 KiB read buffer"
    );
    match redis_url {
        Some(url) => println!("redis: private redis-server at {url}"),
        None => println!("redis: skipped, no redis-server installed"),
    }
    println!();
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn progress_run(round: usize, params: &Params, scenario: Scenario, kind: Kind, run: &Run) {
    let errors = match &run.first_error {
        Some(first) => format!(", {} errors, first: {first}", run.errors),
        None => String::new(),
    };
    let redis = match run.redis_cpu_per_op() {
        Some(cpu) => format!(" + {cpu:.1} in redis-server"),
        None => String::new(),
    };
    println!(
        "round {}/{} {:<5} {:<10} {:>9.0} {} ({} in {:.2} s; server CPU {:.1} us each{redis}{errors})",
        round + 1,
        params.rounds,
        scenario.name(),
        kind.name(),
        run.per_second(),
        scenario.unit(),
        run.done,
        run.elapsed.as_secs_f64(),
        run.server_cpu_per_op()
    );
}

pub fn progress_hold(round: usize, params: &Params, kind: Kind, hold: &Hold) {
    println!(
        "hold {}/{} {:<6} {:>6.0} B/socket: RSS {} KiB idle, {} KiB with {} open, {} KiB after \
         closing{}",
        round + 1,
        params.hold_rounds,
        kind.name(),
        hold.per_socket(),
        hold.rss_before / 1024,
        hold.rss_open / 1024,
        hold.opened,
        hold.rss_closed / 1024,
        if hold.failed > 0 {
            format!(", {} failed to open", hold.failed)
        } else {
            String::new()
        }
    );
}

/// One cell of a ratio column: the value, the target and whether it was met.
struct Verdict {
    value: String,
    target: String,
    result: &'static str,
}

impl Verdict {
    fn missing() -> Verdict {
        Verdict {
            value: "n/a".into(),
            target: "-".into(),
            result: "-",
        }
    }

    fn ratio(ratio: Option<f64>, least: f64) -> Verdict {
        let Some(ratio) = ratio else {
            return Verdict::missing();
        };
        Verdict {
            value: format!("{ratio:.3}x"),
            target: format!(">= {least:.2}x"),
            result: if ratio >= least { "met" } else { "MISSED" },
        }
    }

    fn extra(value: Option<f64>, bare: Option<f64>, most: Option<f64>) -> Verdict {
        let (Some(value), Some(bare)) = (value, bare) else {
            return Verdict::missing();
        };
        let extra = value - bare;
        let (target, result) = match most {
            Some(most) => (
                format!("<= +{most:.0} B"),
                if extra <= most { "met" } else { "MISSED" },
            ),
            None => ("-".to_owned(), "-"),
        };
        Verdict {
            value: format!("{extra:+.0} B"),
            target,
            result,
        }
    }
}

/// The final table: medians, ratios vs bare, targets and verdicts.
pub fn table(params: &Params, kinds: &[Kind], results: &Results) {
    let cell = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
    let has = |kind: Kind| kinds.contains(&kind);
    println!();
    println!(
        "results: medians of {} rounds (churn, ops) and {} rounds (hold); the churn and ops \
         ratios are medians of the per-round ratios (a round runs the servers back to back)",
        params.rounds, params.hold_rounds
    );
    println!(
        "{:<6} {:<9} {:>9} {:>9} {:>9} | {:>11} {:>11} {:>6} | {:>10} {:>9} {:>6}",
        "",
        "unit",
        "bare",
        "memory",
        "redis",
        "memory/bare",
        "target",
        "",
        "redis/bare",
        "target",
        ""
    );
    let mut rows = Vec::new();
    for scenario in [Scenario::Churn, Scenario::Ops] {
        let value = |kind: Kind| has(kind).then(|| results.rate(scenario, kind)).flatten();
        let ratio = |kind: Kind| {
            has(kind)
                .then(|| results.paired_ratio(scenario, kind))
                .flatten()
        };
        let (memory_target, redis_target) = scenario.targets();
        rows.push((
            scenario.name(),
            scenario.unit(),
            [value(Kind::Bare), value(Kind::Memory), value(Kind::Redis)],
            Verdict::ratio(ratio(Kind::Memory), memory_target),
            Verdict::ratio(ratio(Kind::Redis), redis_target),
        ));
    }
    let hold = |kind: Kind| has(kind).then(|| results.hold(kind)).flatten();
    let bare = hold(Kind::Bare);
    rows.push((
        "hold",
        "B/socket",
        [bare, hold(Kind::Memory), hold(Kind::Redis)],
        Verdict::extra(hold(Kind::Memory), bare, Some(HOLD_EXTRA_TARGET)),
        Verdict::extra(hold(Kind::Redis), bare, None),
    ));
    for (name, unit, values, memory, redis) in rows {
        println!(
            "{:<6} {:<9} {:>9} {:>9} {:>9} | {:>11} {:>11} {:>6} | {:>10} {:>9} {:>6}",
            name,
            unit,
            cell(values[0]),
            cell(values[1]),
            cell(values[2]),
            memory.value,
            memory.target,
            memory.result,
            redis.value,
            redis.target,
            redis.result
        );
    }
    println!(
        "(hold: resident memory of the server process per open idle socket; its ratio columns \
         give the extra over bare)"
    );
    for scenario in [Scenario::Churn, Scenario::Ops] {
        for kind in kinds {
            if let Some(rates) = results.rates.get(&(scenario, *kind)) {
                let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
                let max = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let spread = format!("{min:.0}..{max:.0}");
                let errors = match results.errors.get(&(scenario, *kind)) {
                    Some((count, Some(first))) if *count > 0 => {
                        format!(", {count} errors (first: {first})")
                    }
                    _ => String::new(),
                };
                println!(
                    "  {:<5} {:<10} range over rounds {spread} {}{errors}",
                    scenario.name(),
                    kind.name(),
                    scenario.unit()
                );
            }
        }
    }
    for scenario in [Scenario::Churn, Scenario::Ops] {
        let bare = results.rate(scenario, Kind::Bare);
        let of_medians: Vec<String> = [Kind::Memory, Kind::Redis, Kind::BareRedis]
            .into_iter()
            .filter(|kind| kinds.contains(kind))
            .filter_map(|kind| {
                let ratio = results.rate(scenario, kind)? / bare?;
                Some(format!("{}/bare {ratio:.3}x", kind.name()))
            })
            .collect();
        if !of_medians.is_empty() {
            println!(
                "  {:<5} ratio of the medians, for comparison: {}",
                scenario.name(),
                of_medians.join(", ")
            );
        }
    }
    println!(
        "CPU time per cycle (churn) or operation (ops), medians over rounds; it depends far less \
         on the machine's other load than throughput does:"
    );
    for scenario in [Scenario::Churn, Scenario::Ops] {
        let cpu = |kind: Kind| {
            results
                .server_cpu
                .get(&(scenario, kind))
                .map(|all| median(all))
        };
        let Some(bare) = cpu(Kind::Bare) else {
            continue;
        };
        let mut line = format!("  {:<5} bare {bare:.1} us", scenario.name());
        for kind in [Kind::Memory, Kind::Redis, Kind::BareRedis] {
            let Some(server) = cpu(kind) else {
                continue;
            };
            let redis = results
                .redis_cpu
                .get(&(scenario, kind))
                .map(|all| median(all));
            let total = server + redis.unwrap_or(0.0);
            line.push_str(&format!(", {} {server:.1} us", kind.name()));
            if let Some(redis) = redis {
                line.push_str(&format!(" + {redis:.1} us in redis-server"));
            }
            line.push_str(&format!(" ({:.2}x bare)", total / bare));
        }
        println!("{line}");
    }
    ceiling(kinds, results);
    for problem in &results.hold_problems {
        println!("  {problem}");
    }
    println!("load average at the end: {}", loadavg());
}

/// How far Redis's round trips alone bring the bare server, and how much of that the chat
/// router on `RedisStore` keeps: medians of the per-round ratios.
fn ceiling(kinds: &[Kind], results: &Results) {
    if !kinds.contains(&Kind::BareRedis) {
        return;
    }
    println!(
        "bare+redis: the bare server with each socket's data in a Redis hash, one plain command \
         per operation (no script, no checks, no TTL renewal), on the same Redis:"
    );
    for scenario in [Scenario::Churn, Scenario::Ops] {
        let (Some(ceiling), Some(redis)) = (
            results.paired_ratio(scenario, Kind::BareRedis),
            results.paired_ratio_to(scenario, Kind::Redis, Kind::BareRedis),
        ) else {
            continue;
        };
        println!(
            "  {:<5} bare+redis/bare {ceiling:.3}x; redis/bare+redis {redis:.3}x",
            scenario.name()
        );
    }
}

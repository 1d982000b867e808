//! The write beside its comparisons in interleaved rounds: each round runs every contender
//! once, back to back and starting with a different one, so that the machine's drift over a
//! run (which criterion's benchmarks, run one after the other, cannot see) touches them all
//! alike. Ratios are taken within a round; the report gives their median over the rounds.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::world::{self, Backend, Op, World};

/// Rounds per task count: twice through every starting contender.
const ROUNDS: usize = 10;

/// What runs in every round, in order, with its label.
const CONTENDERS: [(Backend, &str); 5] = [
    (Backend::Redis, "set_session_data"),
    (Backend::TowerSessions, "tower-sessions insert+save"),
    (Backend::RawRedis, "raw HSET"),
    (Backend::EmptyScript, "bound: empty script"),
    (Backend::MinimalWrite, "bound: minimal write script"),
];

/// The comparisons the report prints: (numerator, denominator) as indexes into
/// [`CONTENDERS`].
const RATIOS: [(usize, usize); 5] = [(0, 1), (3, 1), (4, 1), (0, 2), (4, 2)];

/// The rounds at one task count: per contender, the time per call in each round, and the
/// latency of every call of every round.
pub struct Rounds {
    tasks: usize,
    calls: usize,
    per_call: Vec<Vec<Duration>>,
    latencies: Vec<Vec<Duration>>,
}

/// The p99 of `set_session_data` at 32 tasks: at most this many times raw `HSET`'s.
const P99_MAX_RATIO: f64 = 2.0;

/// Runs [`ROUNDS`] rounds of `calls` calls per contender, spread over `tasks` tasks.
pub async fn run(world: &Arc<World>, tasks: usize, calls: usize) -> Rounds {
    let op = Op::SetSessionData;
    let mut fixtures = Vec::with_capacity(CONTENDERS.len());
    for (backend, _) in CONTENDERS {
        let fixture = Arc::new(world::prepare(world, backend, op, tasks, 1).await);
        // A warm-up, so that scripts are loaded and connections busy before the clock runs.
        world::measure(world, backend, op, tasks, tasks * 50, Some(&fixture)).await;
        fixtures.push(fixture);
    }
    let mut per_call = vec![Vec::with_capacity(ROUNDS); CONTENDERS.len()];
    let mut latencies = vec![Vec::with_capacity(ROUNDS * calls); CONTENDERS.len()];
    for round in 0..ROUNDS {
        // Each round starts with the next contender, so that none always runs first.
        for step in 0..CONTENDERS.len() {
            let i = (round + step) % CONTENDERS.len();
            let backend = CONTENDERS[i].0;
            let measured =
                world::measure_latencies(world, backend, op, tasks, calls, Some(&fixtures[i]))
                    .await;
            per_call[i].push(measured.elapsed / u32::try_from(calls).expect("calls fit u32"));
            latencies[i].extend(measured.latencies);
        }
    }
    for times in &mut latencies {
        times.sort_unstable();
    }
    Rounds {
        tasks,
        calls,
        per_call,
        latencies,
    }
}

/// The target of the ratio of contender `ours` to contender `base` at `tasks` tasks: the write
/// beside tower-sessions (1.3x at 32 tasks, at least as fast elsewhere) and beside raw `HSET`
/// (0.8x at 32 tasks).
fn target(ours: usize, base: usize, tasks: usize) -> Option<f64> {
    match (ours, base, tasks) {
        (0, 1, 32) => Some(1.3),
        (0, 1, _) => Some(1.0),
        (0, 2, 32) => Some(0.8),
        _ => None,
    }
}

/// The `q`-quantile of sorted `times`, in µs.
fn quantile(times: &[Duration], q: f64) -> f64 {
    let at = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
    times[at].as_secs_f64() * 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The report's section on the rounds.
pub fn render(out: &mut String, runs: &[Rounds]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n-- Interleaved rounds: {ROUNDS} rounds, each running every contender once \
         back to back, each round starting with the next one;\n   time = median of the rounds' times per call, ratio = median of the \
         rounds' throughput ratios, range = their lowest..highest;\n   p50 / p99 = the latency of one call \
         (from its start to its answer) over every call of every round"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{} task(s), {} calls per contender and round:",
            run.tasks, run.calls
        );
        for (i, (_, label)) in CONTENDERS.iter().enumerate() {
            let time = median(run.per_call[i].iter().map(Duration::as_secs_f64).collect());
            let times = &run.latencies[i];
            let _ = writeln!(
                out,
                "  {label:<30} {:>10.2} µs per call   p50 {:>9.1} µs   p99 {:>9.1} µs",
                time * 1e6,
                quantile(times, 0.50),
                quantile(times, 0.99),
            );
        }
        for (ours, base) in RATIOS {
            let ratios: Vec<f64> = run.per_call[ours]
                .iter()
                .zip(&run.per_call[base])
                .map(|(ours, base)| base.as_secs_f64() / ours.as_secs_f64())
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            let ratio = median(ratios);
            let verdict = match target(ours, base, run.tasks) {
                Some(target) if ratio >= target => format!("   target >= {target:.1}x: met"),
                Some(target) => format!("   target >= {target:.1}x: MISSED"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<30} {:>6.2}x of {:<28} range {low:.2}x..{high:.2}x{verdict}",
                CONTENDERS[ours].1, ratio, CONTENDERS[base].1,
            );
        }
        let (ours, hset) = (
            quantile(&run.latencies[0], 0.99),
            quantile(&run.latencies[2], 0.99),
        );
        let ratio = ours / hset;
        let verdict = if run.tasks != 32 {
            "(no target)".to_owned()
        } else if ratio <= P99_MAX_RATIO {
            format!("target <= {P99_MAX_RATIO:.1}x: met")
        } else {
            format!("target <= {P99_MAX_RATIO:.1}x: MISSED")
        };
        let _ = writeln!(
            out,
            "  p99 of {} / p99 of {}: {ratio:.2}x {verdict}",
            CONTENDERS[0].1, CONTENDERS[2].1
        );
    }
}

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

/// The rounds at one task count: per contender, the time per call in each round.
pub struct Rounds {
    tasks: usize,
    calls: usize,
    per_call: Vec<Vec<Duration>>,
}

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
    for round in 0..ROUNDS {
        // Each round starts with the next contender, so that none always runs first.
        for step in 0..CONTENDERS.len() {
            let i = (round + step) % CONTENDERS.len();
            let backend = CONTENDERS[i].0;
            let took = world::measure(world, backend, op, tasks, calls, Some(&fixtures[i])).await;
            per_call[i].push(took / u32::try_from(calls).expect("calls fit u32"));
        }
    }
    Rounds {
        tasks,
        calls,
        per_call,
    }
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
        "\n-- Interleaved rounds (no targets): {ROUNDS} rounds, each running every contender once \
         back to back, each round starting with the next one;\n   time = median of the rounds' times per call, ratio = median of the \
         rounds' throughput ratios, range = their lowest..highest"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{} task(s), {} calls per contender and round:",
            run.tasks, run.calls
        );
        for (i, (_, label)) in CONTENDERS.iter().enumerate() {
            let time = median(run.per_call[i].iter().map(Duration::as_secs_f64).collect());
            let _ = writeln!(out, "  {label:<30} {:>10.2} µs", time * 1e6);
        }
        for (ours, base) in RATIOS {
            let ratios: Vec<f64> = run.per_call[ours]
                .iter()
                .zip(&run.per_call[base])
                .map(|(ours, base)| base.as_secs_f64() / ours.as_secs_f64())
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "  {:<30} {:>6.2}x of {:<28} range {low:.2}x..{high:.2}x",
                CONTENDERS[ours].1,
                median(ratios),
                CONTENDERS[base].1,
            );
        }
    }
}

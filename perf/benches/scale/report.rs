//! What the scale bench prints: one table, the projection to 100,000 connections per instance,
//! and a plot of the per-connection costs against N (an SVG).

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use crate::server::Kind;

/// What one server did at one N.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: Kind,
    pub n: usize,
    /// Resident memory: before the first connection, and with all N open.
    pub rss_before: u64,
    pub rss_open: u64,
    /// Time to open all N (connect, welcome, and the join of a room).
    pub open: Duration,
    /// Connections the kernel dropped for a full listen queue while the N opened.
    pub listen_drops: u64,
    /// Server CPU at idle, as a share of one core.
    pub idle_cpu: f64,
    /// Redis commands per second at idle, and the window they were counted over.
    pub idle_commands: Option<(f64, Duration)>,
    /// Fan-out latency over rooms of 100, p50 and p99.
    pub fanout: Option<(Duration, Duration)>,
    /// SIGTERM until the process exited, every session detached; Redis's peak commands per
    /// second meanwhile.
    pub sigterm: Duration,
    pub sigterm_peak: Option<f64>,
    pub deploy: Option<Storm>,
    pub fresh: Option<Storm>,
    /// Fresh connects arriving over the time the deploy storm took.
    pub fresh_paced: Option<Storm>,
    /// Every client away, then back at once, resuming.
    pub reconnect: Option<Storm>,
}

/// A storm of N clients arriving at once.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Until every client was welcomed (resumed, for a deploy).
    pub took: Duration,
    /// Clients welcomed (resumed) and lost (a fresh session instead of theirs).
    pub done: usize,
    pub lost: usize,
    /// Upgrades refused with 503 along the way (each retried).
    pub busy: usize,
    /// Other attempts that failed and were retried: connections refused (the new process not
    /// listening yet), handshakes or welcomes not answered in time.
    pub failed: usize,
    /// Clients whose messages sent while they were away came exactly once and in order.
    pub delivered_in_order: Option<usize>,
    /// Redis: commands per client, and the peak commands per second.
    pub commands_per_client: Option<f64>,
    pub peak_commands: Option<f64>,
    /// Redis: its CPU time (user and system) per client.
    pub redis_cpu_per_client: Option<Duration>,
    /// Over several rounds of the storm: the lowest and highest Redis CPU per client.
    pub cpu_range: Option<(Duration, Duration)>,
    pub listen_drops: u64,
}

impl Storm {
    /// The round of median Redis CPU per client, with the range over all rounds.
    pub fn median(mut rounds: Vec<Storm>) -> Storm {
        rounds.sort_by_key(|storm| storm.redis_cpu_per_client);
        let range = match (rounds.first(), rounds.last()) {
            (Some(low), Some(high)) if rounds.len() > 1 => {
                low.redis_cpu_per_client.zip(high.redis_cpu_per_client)
            }
            _ => None,
        };
        let mut median = rounds.swap_remove(rounds.len() / 2);
        median.cpu_range = range;
        median
    }
}

impl Row {
    pub fn per_connection(&self) -> f64 {
        self.rss_open.saturating_sub(self.rss_before) as f64 / self.n as f64
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// The table, as the performance page shows it.
pub fn table(rows: &[Row]) {
    println!();
    println!(
        "| N | server | RSS per connection | over bare | idle CPU | Redis commands per session per second at idle | open all N | listen drops | fan-out p50 / p99 | SIGTERM until exit (peak Redis commands per s) | deploy storm: resumed, lost, in order | time, Redis commands and Redis CPU per client, peak commands per s, 503s, other failed attempts, listen drops | fresh-connect storm: the same |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let bare = rows
            .iter()
            .find(|other| other.kind == Kind::Bare && other.n == row.n)
            .map(Row::per_connection);
        let over = match (row.kind, bare) {
            (Kind::Bare, _) | (_, None) => "–".to_owned(),
            (_, Some(bare)) => format!("{:+.1} KiB", (row.per_connection() - bare) / 1024.0),
        };
        let idle = row.idle_commands.map_or("–".to_owned(), |(per_second, _)| {
            format!("{:.3}", per_second / row.n as f64)
        });
        let fanout = row.fanout.map_or("–".to_owned(), |(p50, p99)| {
            format!("{} / {}", ms(p50), ms(p99))
        });
        let storm_costs = |storm: &Storm| {
            let commands = storm
                .commands_per_client
                .map_or("–".to_owned(), |c| format!("{c:.1}"));
            let peak = storm
                .peak_commands
                .map_or("–".to_owned(), |p| format!("{p:.0}"));
            let cpu = storm.redis_cpu_per_client.map_or("–".to_owned(), |cpu| {
                format!("{:.0} µs", cpu.as_secs_f64() * 1e6)
            });
            format!(
                "{}, {commands}, {cpu}, {peak}, {}, {}, {}",
                secs(storm.took),
                storm.busy,
                storm.failed,
                storm.listen_drops
            )
        };
        let deploy = row.deploy.as_ref().map_or("–".to_owned(), |storm| {
            format!(
                "{} / {}, {} lost, {} in order",
                storm.done,
                row.n,
                storm.lost,
                storm.delivered_in_order.unwrap_or(0)
            )
        });
        let sigterm = match row.sigterm_peak {
            Some(peak) => format!("{} ({peak:.0})", secs(row.sigterm)),
            None => secs(row.sigterm),
        };
        let deploy_costs = row.deploy.as_ref().map_or("–".to_owned(), storm_costs);
        let fresh = row.fresh.as_ref().map_or("–".to_owned(), storm_costs);
        println!(
            "| {} | {} | {} | {over} | {:.2}% | {idle} | {} | {} | {fanout} | {sigterm} | {deploy} | {deploy_costs} | {fresh} |",
            row.n,
            row.kind.name(),
            kib(row.per_connection()),
            row.idle_cpu * 100.0,
            secs(row.open),
            row.listen_drops,
        );
    }
}

/// A resume against a fresh connect, in Redis commands and Redis CPU per client, at each N.
pub fn resume_cost(rows: &[Row]) {
    println!();
    println!(
        "A resume against a fresh connect into the same room, per client, at the same pace: after a deploy (against fresh clients arriving over the time the resumes took), and all at once (the reconnect storm against the fresh-connect storm):"
    );
    for row in rows {
        let (Some(deploy), Some(paced), Some(reconnect), Some(fresh)) =
            (&row.deploy, &row.fresh_paced, &row.reconnect, &row.fresh)
        else {
            continue;
        };
        println!(
            "- N = {}: after a deploy {}; all at once {} ({} / {} resumed, {} lost, {} in order, in {})",
            row.n,
            against(deploy, paced),
            against(reconnect, fresh),
            reconnect.done,
            row.n,
            reconnect.lost,
            reconnect.delivered_in_order.unwrap_or(0),
            secs(reconnect.took),
        );
    }
}

/// A resume's commands and Redis CPU per client against a fresh connect's, and their ratios.
fn against(resume: &Storm, fresh: &Storm) -> String {
    let cpu = |storm: &Storm| {
        storm
            .redis_cpu_per_client
            .map_or(0.0, |cpu| cpu.as_secs_f64() * 1e6)
    };
    let commands = |storm: &Storm| storm.commands_per_client.unwrap_or_default();
    let ratio = |resume: f64, fresh: f64| {
        if fresh > 0.0 {
            format!("{:.2}x", resume / fresh)
        } else {
            "–".to_owned()
        }
    };
    let range = |storm: &Storm| {
        storm.cpu_range.map_or(String::new(), |(low, high)| {
            format!(
                " ({:.0}–{:.0})",
                low.as_secs_f64() * 1e6,
                high.as_secs_f64() * 1e6
            )
        })
    };
    format!(
        "{:.1} commands and {:.0} µs{} against {:.1} and {:.0} µs{} ({} and {})",
        commands(resume),
        cpu(resume),
        range(resume),
        commands(fresh),
        cpu(fresh),
        range(fresh),
        ratio(commands(resume), commands(fresh)),
        ratio(cpu(resume), cpu(fresh)),
    )
}

/// Least squares of `points` (x, y): intercept and slope.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - slope * mx, slope)
}

/// What 100,000 connections on one instance would cost, from the slope of each measure
/// against N.
pub fn projection(rows: &[Row], target: f64) {
    println!();
    println!("Projected to {target:.0} connections per instance (least squares over N):");
    for kind in Kind::ALL {
        let of = |measure: &dyn Fn(&Row) -> Option<f64>| {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|row| row.kind == kind)
                .filter_map(|row| measure(row).map(|y| (row.n as f64, y)))
                .collect();
            (points.len() >= 2).then(|| {
                let (intercept, slope) = fit(&points);
                intercept + slope * target
            })
        };
        let Some(rss) = of(&|row| Some(row.rss_open as f64)) else {
            continue;
        };
        let cpu = of(&|row| Some(row.idle_cpu)).unwrap_or(0.0);
        let mut line = format!(
            "- {}: resident memory {:.2} GiB, idle CPU {:.2}% of a core",
            kind.name(),
            rss / f64::from(1 << 30),
            cpu * 100.0
        );
        if let Some(commands) = of(&|row| row.idle_commands.map(|(c, _)| c)) {
            line.push_str(&format!(", Redis commands at idle {commands:.0}/s"));
        }
        println!("{line}");
    }
}

/// The per-connection costs against N, as an SVG at `path`: resident memory per connection
/// of each server, and Redis commands per session per second at idle (right axis scale in
/// the legend).
pub fn plot(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(260);
    let max_n = rows.iter().map(|row| row.n).max().unwrap_or(1) as f64 * 1.05;
    let max_kib = rows
        .iter()
        .map(|row| row.per_connection() / 1024.0)
        .fold(1.0, f64::max)
        * 1.2;
    let mut memory = ChartBuilder::on(&upper)
        .caption("Resident memory per connection", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_n, 0.0..max_kib)?;
    memory
        .configure_mesh()
        .x_desc("open connections (N)")
        .y_desc("KiB")
        .draw()?;
    let colours = [BLACK, BLUE, RED];
    for (kind, colour) in Kind::ALL.into_iter().zip(colours) {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|row| row.kind == kind)
            .map(|row| (row.n as f64, row.per_connection() / 1024.0))
            .collect();
        memory
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(kind.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        memory.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, colour.filled())),
        )?;
    }
    memory
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;

    let redis: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|row| {
            row.idle_commands
                .map(|(per_second, _)| (row.n as f64, per_second / row.n as f64))
        })
        .collect();
    let max_rate = redis.iter().map(|(_, y)| *y).fold(0.06, f64::max) * 1.2;
    let mut commands = ChartBuilder::on(&lower)
        .caption(
            "Redis commands per session per second at idle (TTL 60 s)",
            ("sans-serif", 14),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_n, 0.0..max_rate)?;
    commands
        .configure_mesh()
        .x_desc("open connections (N)")
        .draw()?;
    commands.draw_series(LineSeries::new(redis.clone(), RED.stroke_width(2)))?;
    commands.draw_series(redis.into_iter().map(|p| Circle::new(p, 3, RED.filled())))?;
    commands.draw_series(LineSeries::new(
        [(0.0, 0.05), (max_n, 0.05)],
        BLACK.mix(0.4).stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_is_fitted_exactly() {
        let (intercept, slope) = super::fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!((intercept - 1.0).abs() < 1e-9 && (slope - 2.0).abs() < 1e-9);
    }
}

//! The HTTP load section of RESULTS.md: benches/http.sh's wrk runs, the two targets as ratios.

use std::fmt::Write as _;

use crate::inputs::{Http, HttpRun, Stat};
use crate::markdown::{rate, time, verdict};

/// (row id in rows.csv, label)
const ROWS: [(&str, &str); 8] = [
    ("static", "static ceiling"),
    ("cached_memory", "cached hit (memory)"),
    ("cached_redis", "cached hit (Redis)"),
    ("cached_tiered", "cached hit (Redis + local tier)"),
    ("daily_off", "`/meals/daily` cache off"),
    ("daily_on", "`/meals/daily` cache on"),
    ("daily_on_tiered", "`/meals/daily` cache on, local tier"),
    (
        "daily_on_memory",
        "`/meals/daily` cache on, in-process (comparison)",
    ),
];

/// (numerator row, denominator row, at least, target)
const TARGETS: [(&str, &str, f64, &str); 7] = [
    (
        "cached_memory",
        "static",
        0.8,
        "HTTP cached hit (memory) >= 0.8x the static ceiling",
    ),
    (
        "cached_redis",
        "static",
        0.8,
        "HTTP cached hit (Redis) >= 0.8x the static ceiling",
    ),
    (
        "cached_tiered",
        "static",
        0.8,
        "HTTP cached hit (Redis + local tier) >= 0.8x the static ceiling",
    ),
    (
        "daily_on",
        "daily_off",
        5.0,
        "`/meals/daily` cache on >= 5x cache off",
    ),
    (
        "daily_on_tiered",
        "daily_off",
        5.0,
        "`/meals/daily` cache on (local tier) >= 5x cache off",
    ),
    (
        "cached_memory",
        "daily_off",
        5.0,
        "HTTP cached hit (memory) >= 5x the uncached database endpoint",
    ),
    (
        "cached_redis",
        "daily_off",
        5.0,
        "HTTP cached hit (Redis) >= 5x the uncached database endpoint",
    ),
];

fn stat(http: &Http, row: &str, f: impl Fn(&HttpRun) -> f64) -> Option<Stat> {
    Stat::of(http.runs_of(row).into_iter().map(f).collect())
}

fn with_range(s: Option<Stat>, show: impl Fn(f64) -> String) -> String {
    match s {
        None => "n/a".to_owned(),
        Some(s) if s.min == s.max => show(s.median),
        Some(s) => format!("{} ({}–{})", show(s.median), show(s.min), show(s.max)),
    }
}

fn us(us: f64) -> String {
    time(us * 1e3)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fact that is a count, with thousands separators; as is when it is not a number.
fn number(fact: &str) -> String {
    fact.parse().map_or_else(|_| fact.to_owned(), thousands)
}

/// What each row measures, with the run's own evidence (body sizes, Cache-Status, hit counts).
fn what(http: &Http, row: &str) -> String {
    match row {
        "static" => format!(
            "`http_targets` `GET /static`: the handler, {} bytes of JSON (a page of the app's \
             food search), `Cache-Control: public, max-age=300`",
            number(http.fact("body_bytes"))
        ),
        "cached_memory" => format!(
            "`GET /cached`: the same handler behind `HttpCacheLayer` on `Cache::memory()`; \
             every answer a hit (`Cache-Status: {}`)",
            http.fact("cache_status_memory")
        ),
        "cached_redis" => format!(
            "the same on Redis (`CACHE_URL=redis://127.0.0.1:PORT/0`): one Redis `GET` per \
             request (`Cache-Status: {}`)",
            http.fact("cache_status_redis")
        ),
        "cached_tiered" => format!(
            "the same on Redis behind a local tier (`Cache::builder().local_tier(10000, ..)`, \
             as a replica of a scaled-out deployment runs it): hits served from the process, \
             no round trip (`Cache-Status: {}`)",
            http.fact("cache_status_tiered")
        ),
        "daily_off" => format!(
            "calories-app with `CACHE_URL=none`: each request reads the user's profile and the \
             day's meals from MariaDB ({} bytes of JSON for user00000001)",
            number(http.fact("daily_body_bytes"))
        ),
        "daily_on" => {
            let hits: f64 = http.fact("daily_on_cache_hits").parse().unwrap_or(f64::NAN);
            let misses: f64 = http
                .fact("daily_on_cache_misses")
                .parse()
                .unwrap_or(f64::NAN);
            format!(
                "calories-app with `CACHE_URL=redis://..`: three Redis round trips a request, \
                 the rate limiter's counter script, the profile and the day ({:.2}% hits over \
                 the measured runs: {} hits, {} misses)",
                100.0 * hits / (hits + misses),
                number(http.fact("daily_on_cache_hits")),
                number(http.fact("daily_on_cache_misses"))
            )
        }
        "daily_on_tiered" => "calories-app with `CACHE_URL=redis://..` and \
             `CACHE_LOCAL_CAPACITY=10000` (the Kubernetes kit's setting): the profile and the \
             day from the replica's local tier, one Redis round trip a request for the shared \
             rate limiter"
            .to_owned(),
        "daily_on_memory" => "not a target row: calories-app with `CACHE_URL` unset, the \
             in-process memory cache and rate limiter, so no Redis round trip; it shows what \
             the Redis trips of the row above cost"
            .to_owned(),
        _ => String::new(),
    }
}

/// The HTTP section, or what it would say when http.sh did not run.
pub(crate) fn section(http: Option<&Http>, analysis: bool, md: &mut String) {
    let _ = writeln!(md, "## HTTP load\n");
    let Some(http) = http else {
        let _ = writeln!(
            md,
            "Not measured in this run: `benches/http.sh` did not run. Nothing is estimated here.\n"
        );
        return;
    };
    let rounds: usize = http.fact("rounds").parse().unwrap_or(1);
    let _ = writeln!(
        md,
        "`benches/http.sh`: `wrk` {} with {} connections on {} threads, {} s per row after a {} s \
         warm-up{}, on 127.0.0.1. Server and `wrk` share the machine's cores. The two \
         `/meals/daily` rows run the release `calories-app` on MariaDB {} seeded with {} users \
         × {} meals, and rotate over the bearer tokens of {} seeded users: after the first pass \
         the cache-on row measures hits (the count is below). Rate limits are set far above \
         the load, so the limiter counts but never refuses.\n",
        http.fact("wrk"),
        http.fact("connections"),
        http.fact("threads"),
        http.fact("duration_s"),
        http.fact("warmup_s"),
        if rounds > 1 {
            format!(
                "; {rounds} rounds with the rows interleaved, the median of the rounds with \
                 the range in brackets"
            )
        } else {
            ", one round".to_owned()
        },
        http.fact("mariadb"),
        number(http.fact("seed_users")),
        http.fact("seed_meals_per_user"),
        http.fact("token_users")
    );
    let _ = writeln!(
        md,
        "| row | what | req/s | p50 | p99 | requests (errors) |\n|---|---|---|---|---|---|"
    );
    for (row, label) in ROWS {
        let runs = http.runs_of(row);
        let requests: u64 = runs.iter().map(|r| r.requests).sum();
        let errors: u64 = runs.iter().map(|r| r.non2xx + r.socket_errors).sum();
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} ({}) |",
            what(http, row),
            with_range(stat(http, row, |r| r.rps), |v| format!("{}/s", rate(v))),
            with_range(stat(http, row, |r| r.p50_us), us),
            with_range(stat(http, row, |r| r.p99_us), us),
            thousands(requests),
            errors
        );
    }

    let _ = writeln!(
        md,
        "\n| target | req/s | ratio (of the medians) | per round | from this benchmark's CPU per request | verdict |\n|---|---|---|---|---|---|"
    );
    for (top, bottom, at_least, target) in TARGETS {
        let (a, b) = (stat(http, top, |r| r.rps), stat(http, bottom, |r| r.rps));
        let per_round: Vec<f64> = http
            .runs_of(top)
            .iter()
            .filter_map(|t| {
                http.runs_of(bottom)
                    .iter()
                    .find(|b| b.round == t.round)
                    .map(|b| t.rps / b.rps)
            })
            .collect();
        let rounds = Stat::of(per_round.clone()).map_or_else(
            || "n/a".to_owned(),
            |s| {
                if per_round.len() > 1 {
                    format!("{:.2}–{:.2}", s.min, s.max)
                } else {
                    "one round".to_owned()
                }
            },
        );
        let ratio = a.zip(b).map(|(a, b)| a.median / b.median);
        let errors = [top, bottom]
            .iter()
            .flat_map(|row| http.runs_of(row))
            .any(|r| r.non2xx + r.socket_errors > 0);
        let by_cpu = ours_per_request(http, bottom)
            .zip(ours_per_request(http, top))
            .map_or_else(
                || "n/a".to_owned(),
                |(b, t)| format!("{:.2}x", b.median / t.median),
            );
        let _ = writeln!(
            md,
            "| {target} | {} vs {} | {} | {rounds} | {by_cpu} | {} |",
            a.map_or_else(|| "n/a".to_owned(), |a| format!("{}/s", rate(a.median))),
            b.map_or_else(|| "n/a".to_owned(), |b| format!("{}/s", rate(b.median))),
            ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x")),
            if errors {
                "invalid: errors in the run"
            } else {
                verdict(ratio.map(|r| r >= at_least))
            }
        );
    }
    let missed = TARGETS.iter().any(|&(top, bottom, at_least, _)| {
        let (a, b) = (stat(http, top, |r| r.rps), stat(http, bottom, |r| r.rps));
        a.zip(b)
            .is_some_and(|(a, b)| a.median / b.median < at_least)
    });
    let _ = writeln!(
        md,
        "\nThe verdicts are on the measured rates. The column before them is the rate ratio \
         this benchmark's own CPU per request implies (server, redis-server, mariadbd, wrk and \
         interrupts, from the table below): what the ratio would be with the cores to itself, \
         which it does not have when *other processes* below is not near zero. It is an \
         explanation, not a measurement of rate."
    );
    if missed && analysis {
        let _ = writeln!(
            md,
            "\nWhere the time goes on the missed HTTP targets: [ANALYSIS.md](ANALYSIS.md)."
        );
    }

    cpu_table(http, md);

    let _ = writeln!(
        md,
        "\nSeeding that database: `calories-app seed --users {} --meals-per-user {}` wrote {} \
         users and {} meals in {} s (the command's own figure; {} s wall clock with start-up \
         and migrations).\n",
        http.fact("seed_users"),
        http.fact("seed_meals_per_user"),
        number(http.fact("seed_users")),
        number(http.fact("seed_meals")),
        http.fact("seed_s"),
        http.fact("seed_wall_s")
    );
}

/// The CPU per request of this benchmark's own processes (all but other work on the machine), µs.
fn ours_per_request(http: &Http, row: &str) -> Option<Stat> {
    stat(http, row, |r| {
        (r.cpu.server + r.cpu.redis + r.cpu.db + r.cpu.wrk + r.cpu.irq) / r.requests.max(1) as f64
            * 1e6
    })
}

/// CPU time per request by process, from /proc: what bounds each row's rate on a machine whose
/// cores the server, its backends and wrk share.
fn cpu_table(http: &Http, md: &mut String) {
    let _ = writeln!(
        md,
        "\nWhere the CPU went, per request: user + system time of each process during the \
         measured runs (from `/proc`, median of the rounds). With every core busy, the rate is \
         about the cores ({}) divided by the machine's busy time per request. *interrupts* is \
         irq + softirq time (part of the loopback TCP work); *other processes* is the rest of \
         the machine's busy time: work on the machine that is not this benchmark. *steal* is \
         time the hypervisor gave this VM's cores to others, in cores.\n\n\
         | row | server | redis-server | mariadbd | wrk | interrupts | other processes | machine busy | busy cores | steal |\n\
         |---|---|---|---|---|---|---|---|---|---|",
        http.fact("cores")
    );
    for (row, label) in ROWS {
        let per_request = |f: &dyn Fn(&HttpRun) -> f64| {
            stat(http, row, |r| f(r) / r.requests.max(1) as f64 * 1e6)
                .map_or_else(|| "n/a".to_owned(), |s| us(s.median.max(0.0)))
        };
        let cores = |f: &dyn Fn(&HttpRun) -> f64| {
            stat(http, row, |r| f(r) / r.cpu.window)
                .map_or_else(|| "n/a".to_owned(), |s| format!("{:.2}", s.median))
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            per_request(&|r| r.cpu.server),
            per_request(&|r| r.cpu.redis),
            per_request(&|r| r.cpu.db),
            per_request(&|r| r.cpu.wrk),
            per_request(&|r| r.cpu.irq),
            per_request(&|r| r.cpu.busy
                - r.cpu.server
                - r.cpu.redis
                - r.cpu.db
                - r.cpu.wrk
                - r.cpu.irq),
            per_request(&|r| r.cpu.busy),
            cores(&|r| r.cpu.busy),
            cores(&|r| r.cpu.steal),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "server_cpu_s=1.00,redis_cpu_s=0.00,db_cpu_s=0.00,wrk_cpu_s=0.50,\
                       busy_cpu_s=2.00,irq_cpu_s=0.10,steal_cpu_s=0.00,window_s=1.000";

    fn run(rows: &[(&str, f64, u64)]) -> Http {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let csv: String = rows
            .iter()
            .map(|(row, rps, non2xx)| {
                format!(
                    "{row},1,requests=1000,duration_s=1.000,rps={rps},p50_us=500,p90_us=900,\
                     p99_us=2000,max_us=3000,non2xx={non2xx},socket_errors=0,{CPU}\n"
                )
            })
            .collect();
        let written = std::fs::write(dir.path().join("rows.csv"), csv)
            .and_then(|()| std::fs::write(dir.path().join("http.txt"), "rounds: 1\n"));
        assert!(written.is_ok());
        match Http::load(dir.path()) {
            Ok(Some(http)) => http,
            other => panic!("rows.csv not read: {other:?}"),
        }
    }

    fn verdict_of(md: &str, target: &str) -> String {
        md.lines()
            .find(|l| l.starts_with(&format!("| {target}")))
            .and_then(|l| l.trim_end_matches(" |").rsplit(" | ").next())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn ratios_are_judged_on_the_measured_rates() {
        let http = run(&[
            ("static", 100_000.0, 0),
            ("cached_memory", 80_000.0, 0),
            ("cached_redis", 79_000.0, 0),
            ("daily_off", 10_000.0, 0),
            ("daily_on", 49_000.0, 0),
        ]);
        let mut md = String::new();
        section(Some(&http), false, &mut md);
        assert_eq!(
            verdict_of(&md, "HTTP cached hit (memory) >= 0.8x the static ceiling"),
            "met"
        );
        assert_eq!(
            verdict_of(&md, "HTTP cached hit (Redis) >= 0.8x the static ceiling"),
            "**MISSED**"
        );
        assert_eq!(
            verdict_of(&md, "`/meals/daily` cache on >= 5x cache off"),
            "**MISSED**"
        );
        assert!(md.contains("| static ceiling |"), "{md}");
    }

    #[test]
    fn a_run_with_errors_is_no_verdict() {
        let http = run(&[("static", 100_000.0, 0), ("cached_memory", 90_000.0, 12)]);
        let mut md = String::new();
        section(Some(&http), false, &mut md);
        assert_eq!(
            verdict_of(&md, "HTTP cached hit (memory) >= 0.8x the static ceiling"),
            "invalid: errors in the run"
        );
    }

    #[test]
    fn no_http_directory_says_not_measured() {
        let mut md = String::new();
        section(None, false, &mut md);
        assert!(md.contains("Not measured in this run"), "{md}");
    }
}

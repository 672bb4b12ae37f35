//! RESULTS.md: machine, commands, the targets as ratios with verdicts, then every figure.

use std::fmt::Write as _;

use crate::inputs::{Paired, Run, Stat};

/// (id in bench names, label, bytes on the wire: envelope header + bincode payload)
pub(crate) const SIZES: [(&str, &str, u32); 2] = [
    ("1kib", "~1 KiB struct", 1032),
    ("100b", "100 B string", 120),
];
pub(crate) const OPS: [&str; 2] = ["get", "set"];
/// (id, tasks)
pub(crate) const MODES: [(&str, u32); 4] = [
    ("latency", 1),
    ("tasks_16", 16),
    ("tasks_64", 64),
    ("tasks_256", 256),
];
/// (function id, label)
pub(crate) const VARIANTS: [(&str, &str); 4] = [
    ("cache-core", "cache-core"),
    ("raw-multiplexed", "raw redis, multiplexed"),
    ("deadpool", "deadpool-redis"),
    ("cached-crate", "cached crate"),
];

pub(crate) fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub(crate) fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else {
        format!("{:.1}k", per_s / 1e3)
    }
}

pub(crate) fn time_fig(s: Option<Stat>) -> String {
    s.map_or_else(
        || "n/a".to_owned(),
        |s| format!("{} ({}–{})", time(s.median), time(s.min), time(s.max)),
    )
}

fn rate_fig(s: Option<Stat>) -> String {
    s.map_or_else(
        || "n/a".to_owned(),
        |s| format!("{}/s ({}–{})", rate(s.median), rate(s.min), rate(s.max)),
    )
}

/// A time ratio (project / peer), as is: lower is better.
fn time_ratio(p: Option<Paired>) -> String {
    time_ratio_to(p, 3)
}

/// The same with `digits` decimals (the targets table: enough to see which side of a
/// threshold a ratio falls).
pub(crate) fn time_ratio_to(p: Option<Paired>, digits: usize) -> String {
    p.map_or_else(
        || "n/a".to_owned(),
        |p| format!("{:.*}x ({:.2}–{:.2})", digits, p.median, p.p10, p.p90),
    )
}

/// A time ratio turned into a throughput ratio (peer time / project time): higher is better.
fn rate_ratio(p: Option<Paired>) -> String {
    rate_ratio_to(p, 3)
}

fn rate_ratio_to(p: Option<Paired>, digits: usize) -> String {
    p.map_or_else(
        || "n/a".to_owned(),
        |p| {
            format!(
                "{:.*}x ({:.2}–{:.2})",
                digits,
                1.0 / p.median,
                1.0 / p.p90,
                1.0 / p.p10
            )
        },
    )
}

pub(crate) fn median_ratio(a: Option<Stat>, b: Option<Stat>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}x", a.median / b.median),
        _ => "n/a".to_owned(),
    }
}

pub(crate) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**MISSED**",
        None => "no data",
    }
}

pub(crate) struct Target {
    pub(crate) target: String,
    pub(crate) figures: String,
    pub(crate) paired: String,
    pub(crate) criterion: String,
    pub(crate) met: Option<bool>,
}

fn targets(run: &Run) -> Vec<Target> {
    let mut rows = Vec::new();
    let t = |g: &str, f: &str| run.bench(g, f).and_then(|b| b.time());
    let r = |g: &str, f: &str| run.bench(g, f).and_then(|b| b.rate());
    for (size, label, _) in SIZES {
        let group = format!("redis_get_{size}_latency");
        let p = run.paired(&format!("{group}_vs_raw"));
        let (a, b) = (t(&group, "cache-core"), t(&group, "raw-multiplexed"));
        rows.push(Target {
            target: format!("Redis hit latency, {label}: <= 1.10x raw multiplexed GET + decode"),
            figures: format!("{} vs {}", time_fig(a), time_fig(b)),
            paired: time_ratio_to(p, 4),
            criterion: median_ratio(a, b),
            met: p.map(|p| p.median <= 1.10),
        });
    }
    for op in OPS {
        for (size, label, _) in SIZES {
            let group = format!("redis_{op}_{size}_tasks_64");
            let p = run.paired(&format!("{group}_vs_raw"));
            let (a, b) = (r(&group, "cache-core"), r(&group, "raw-multiplexed"));
            rows.push(Target {
                target: format!(
                    "Redis {} {label}, 64 tasks: throughput >= 0.90x raw multiplexed",
                    op.to_uppercase()
                ),
                figures: format!("{} vs {}", rate_fig(a), rate_fig(b)),
                paired: rate_ratio_to(p, 4),
                criterion: median_ratio(a, b),
                met: p.map(|p| 1.0 / p.median >= 0.90),
            });
        }
    }
    let mut slower = Vec::new();
    let mut seen = 0;
    for op in OPS {
        for (size, _, _) in SIZES {
            for (mode, _) in MODES {
                if let Some(p) = run.paired(&format!("redis_{op}_{size}_{mode}_vs_cached")) {
                    seen += 1;
                    if p.median >= 1.0 {
                        slower.push(format!("{op} {size} {mode} ({:.4}x time)", p.median));
                    }
                }
            }
        }
    }
    rows.push(Target {
        target: "faster than the `cached` crate's Redis store on every Redis row".to_owned(),
        figures: format!("{seen} rows (GET/SET x 2 sizes x 4 modes), see the Redis tables"),
        paired: if slower.is_empty() {
            "all below 1.0x time".to_owned()
        } else {
            format!("not faster on: {}", slower.join(", "))
        },
        criterion: "see tables".to_owned(),
        met: (seen > 0).then_some(slower.is_empty()),
    });
    for (size, label, _) in SIZES {
        let group = format!("memory_hit_{size}");
        let p = run.paired(&format!("{group}_vs_moka"));
        let (a, b) = (t(&group, "cache-core"), t(&group, "moka-future"));
        rows.push(Target {
            target: format!("memory hit, {label}: <= 1.5x a moka::future::Cache get"),
            figures: format!("{} vs {}", time_fig(a), time_fig(b)),
            paired: time_ratio_to(p, 4),
            criterion: median_ratio(a, b),
            met: p.map(|p| p.median <= 1.5),
        });
    }
    for backend in ["memory", "redis"] {
        let group = format!("read_through_{backend}");
        let p = run.paired(&format!("{group}_macro_vs_by_hand"));
        let (a, b) = (t(&group, "cache_result"), t(&group, "by_hand"));
        rows.push(Target {
            target: format!("`#[cache_result]` hit ({backend}): <= 1.05x hand-written"),
            figures: format!("{} vs {}", time_fig(a), time_fig(b)),
            paired: time_ratio_to(p, 4),
            criterion: median_ratio(a, b),
            met: p.map(|p| p.median <= 1.05),
        });
    }
    for (size, label, _) in SIZES {
        let group = format!("redis_batch_{size}");
        let p = run.paired(&format!("{group}_get_many_vs_sequential"));
        let (a, b) = (t(&group, "get_many_100"), t(&group, "sequential_get_100"));
        rows.push(Target {
            target: format!("`get_many` of 100, {label}: >= 10x faster than 100 sequential gets"),
            figures: format!("{} vs {}", time_fig(a), time_fig(b)),
            paired: p.map_or_else(
                || "n/a".to_owned(),
                |p| {
                    format!(
                        "{:.1}x faster ({:.1}–{:.1})",
                        1.0 / p.median,
                        1.0 / p.p90,
                        1.0 / p.p10
                    )
                },
            ),
            criterion: match (a, b) {
                (Some(a), Some(b)) => format!("{:.1}x faster", b.median / a.median),
                _ => "n/a".to_owned(),
            },
            met: p.map(|p| 1.0 / p.median >= 10.0),
        });
    }
    for backend in ["memory", "redis"] {
        let fact = run.facts.get(&format!("stampede_{backend}_cache_core"));
        let runs = |k: &str| {
            fact.and_then(|f| f.get(k))
                .and_then(serde_json::Value::as_u64)
        };
        let (min, max, rounds) = (
            runs("min_loader_runs"),
            runs("max_loader_runs"),
            runs("rounds"),
        );
        let group = format!("stampede_{backend}");
        rows.push(Target {
            target: format!(
                "stampede ({backend}): exactly one loader run per 1,000 concurrent misses"
            ),
            figures: format!("all served in {}", time_fig(t(&group, "cache-core"))),
            paired: match (min, max, rounds) {
                (Some(min), Some(max), Some(rounds)) => {
                    format!("loader runs per round: {min}–{max} over {rounds} rounds")
                }
                _ => "n/a".to_owned(),
            },
            criterion: String::new(),
            met: min.zip(max).map(|(min, max)| min == 1 && max == 1),
        });
    }
    rows.extend(crate::scale::targets(run));
    rows
}

pub(crate) fn render(run: &Run, analysis: bool) -> String {
    let mut md = String::new();
    let mode = run.machine("mode");
    let flag = if mode.starts_with("quick") {
        " --quick"
    } else {
        ""
    };
    let _ = writeln!(md, "# Benchmark results\n");
    let _ = writeln!(
        md,
        "Written by `benches/run.sh{flag}` on {} from that one run: criterion's samples, the facts \
         the benches recorded and `redis-benchmark`'s rates. Regenerate it; do not edit it.\n",
        run.machine("date")
    );
    let _ = writeln!(md, "## Machine and run\n\n| | |\n|---|---|");
    for key in [
        "cpu",
        "cores",
        "load average at start",
        "kernel",
        "rustc",
        "redis-server",
        "mode",
        "runtime",
    ] {
        let _ = writeln!(md, "| {key} | {} |", run.machine(key));
    }
    let _ = writeln!(md, "\n## Commands\n\n```text\n{}```\n", run.commands);
    let _ = writeln!(
        md,
        "## How to read this\n\n\
         - A figure is the **median** of criterion's samples with the **range** (fastest–slowest \
         sample) in brackets. Each sample is the mean of many operations.\n\
         - *Latency*: one task doing one operation after another, on a current-thread tokio \
         runtime (task and connection on one thread, so scheduling luck does not enter). \
         *N tasks*: N tasks on a two-worker runtime share the operations; the figure is \
         operations per second. One task's rate is 1 / latency, from the same samples.\n\
         - Every Redis variant talks to the same `redis-server` (127.0.0.1, no persistence), \
         the same values, in the same process. The raw and deadpool paths send the bytes \
         cache-core writes (its 19-byte envelope + bincode 2) and decode the payload with \
         bincode 2 (serde, standard configuration), so the work is equal but for the library. \
         The `cached` crate stores MessagePack in its own wrapper (its design); its SET is \
         `async_cache_set_ref` (one `PSETEX`; `async_cache_set` also reads the old value back).\n\
         - **Ratios** are judged on *paired* runs: the project and its peer timed in alternating \
         blocks of a few milliseconds (order flipped each round), the median of the per-round \
         ratios with the 10th–90th percentile. This machine is a 2-core VM whose speed drifts \
         by tens of percent over seconds, so a ratio of two criterion medians measured seconds \
         apart (shown beside it) can move more than the targets' margins.\n"
    );

    let _ = writeln!(
        md,
        "## Targets\n\n| target | figures (cache-core vs peer) | paired ratio | ratio of medians | verdict |\n|---|---|---|---|---|"
    );
    for t in targets(run) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            t.target,
            t.figures,
            t.paired,
            t.criterion,
            verdict(t.met)
        );
    }
    let _ = writeln!(
        md,
        "\nLatency and memory ratios are time ratios (lower is better); throughput ratios are \
         rate ratios (higher is better).{}\n",
        if analysis {
            " Where the time goes on each missed target: [ANALYSIS.md](ANALYSIS.md)."
        } else {
            ""
        }
    );

    redis_tables(run, &mut md);
    other_tables(run, &mut md);
    crate::scale::section(run, &mut md);
    ceiling_table(run, &mut md);

    crate::http::section(run.http.as_ref(), analysis, &mut md);
    if analysis {
        let _ = writeln!(
            md,
            "## Where the time goes\n\nThe missed targets are taken apart in \
             [ANALYSIS.md](ANALYSIS.md) (profiles and sub-step timings, with what would change them).\n"
        );
    }
    md
}

fn redis_tables(run: &Run, md: &mut String) {
    let _ = writeln!(
        md,
        "## Redis GET and SET, four clients side by side\n\n\
         ![throughput per concurrency](throughput.png)\n"
    );
    for op in OPS {
        for (size, label, bytes) in SIZES {
            let _ = writeln!(
                md,
                "### {} of the {label} ({bytes} bytes stored)\n",
                op.to_uppercase()
            );
            let _ = write!(md, "| |");
            for (_, v) in VARIANTS {
                let _ = write!(md, " {v} |");
            }
            let _ = writeln!(
                md,
                " redis-benchmark -c 1 -P N | cache-core / raw (paired) | cache-core / cached (paired) |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
            for (mode, tasks) in MODES {
                let group = format!("redis_{op}_{size}_{mode}");
                let vs_raw = run.paired(&format!("{group}_vs_raw"));
                let vs_cached = run.paired(&format!("{group}_vs_cached"));
                let ceiling = run.ceiling(op, bytes, tasks, true);
                if tasks == 1 {
                    let _ = write!(md, "| 1 task, latency |");
                    for (v, _) in VARIANTS {
                        let _ = write!(
                            md,
                            " {} |",
                            time_fig(run.bench(&group, v).and_then(|b| b.time()))
                        );
                    }
                    let _ = writeln!(
                        md,
                        " {} | {} time | {} time |",
                        ceiling.map_or_else(|| "n/a".to_owned(), |c| time(1e9 / c.median)),
                        time_ratio(vs_raw),
                        time_ratio(vs_cached)
                    );
                }
                let _ = write!(
                    md,
                    "| {tasks} task{}, ops/s |",
                    if tasks == 1 { "" } else { "s" }
                );
                for (v, _) in VARIANTS {
                    let _ = write!(
                        md,
                        " {} |",
                        rate_fig(run.bench(&group, v).and_then(|b| b.rate()))
                    );
                }
                let _ = writeln!(
                    md,
                    " {} | {} | {} |",
                    rate_fig(ceiling),
                    rate_ratio(vs_raw),
                    rate_ratio(vs_cached)
                );
            }
            let _ = writeln!(md);
        }
    }
}

fn other_tables(run: &Run, md: &mut String) {
    let t = |g: &str, f: &str| time_fig(run.bench(g, f).and_then(|b| b.time()));
    let _ = writeln!(
        md,
        "## Batch: `get_many` of 100 keys against 100 sequential `get`s (Redis, one task)\n\n\
         The raw `MGET` rows show where `get_many`'s time goes: the round trip and transfer, then \
         the 100 decodes.\n\n\
         | value | `get_many` of 100 | 100 sequential `get` | raw `MGET` of 100 | raw `MGET` + 100 decodes | speedup (paired) |\n|---|---|---|---|---|---|"
    );
    for (size, label, _) in SIZES {
        let g = format!("redis_batch_{size}");
        let p = run.paired(&format!("{g}_get_many_vs_sequential"));
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            t(&g, "get_many_100"),
            t(&g, "sequential_get_100"),
            t(&g, "raw_mget_100"),
            t(&g, "raw_mget_100_decode"),
            p.map_or_else(|| "n/a".to_owned(), |p| format!("{:.1}x", 1.0 / p.median))
        );
    }

    let _ = writeln!(
        md,
        "\n## Read-through: a `#[cache_result]` hit against the same read-through by hand\n\n\
         Both build the key `read_through:42` and call `get_or_try_insert_with` with a 600 s TTL; \
         the loader ran 0 times while the hits were measured (checked).\n\n\
         | backend | `#[cache_result]` | by hand | macro / by hand (paired) |\n|---|---|---|---|"
    );
    for backend in ["memory", "redis"] {
        let g = format!("read_through_{backend}");
        let _ = writeln!(
            md,
            "| {backend} | {} | {} | {} |",
            t(&g, "cache_result"),
            t(&g, "by_hand"),
            time_ratio(run.paired(&format!("{g}_macro_vs_by_hand")))
        );
    }

    let _ = writeln!(
        md,
        "\n## Memory hit (clone of the value included)\n\n\
         `Cache::memory()` (10,000 entries, per-entry TTL) against `moka::future::Cache` \
         (10,000 entries, 600 s TTL) and the `cached` crate's `ShardedLruTtlCache` (same bounds); \
         beside them, a hit on the local tier of a Redis-backed cache (same bounds, see \
         Scale-out).\n\n\
         | value | cache-core | moka future | cached sharded | cache-core tiered (local hit) | cache-core / moka (paired) | cache-core / cached (paired) |\n|---|---|---|---|---|---|---|"
    );
    for (size, label, _) in SIZES {
        let g = format!("memory_hit_{size}");
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            t(&g, "cache-core"),
            t(&g, "moka-future"),
            t(&g, "cached-sharded"),
            t(&g, "cache-core-tiered"),
            time_ratio(run.paired(&format!("{g}_vs_moka"))),
            time_ratio(run.paired(&format!("{g}_vs_cached")))
        );
    }

    let _ = writeln!(
        md,
        "\n## Codecs: encode + decode of one value, and its encoded size\n\n\
         | value | bincode 2 | JSON | JSON / bincode time | bincode bytes | JSON bytes |\n|---|---|---|---|---|---|"
    );
    for (size, label, _) in SIZES {
        let g = format!("codec_{size}");
        let sizes = run.facts.get(&format!("codec_{size}_size"));
        let bytes = |k: &str| {
            sizes
                .and_then(|s| s.get(k))
                .and_then(serde_json::Value::as_u64)
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string())
        };
        let tb = run.bench(&g, "bincode").and_then(|b| b.time());
        let tj = run.bench(&g, "json").and_then(|b| b.time());
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            time_fig(tb),
            time_fig(tj),
            median_ratio(tj, tb),
            bytes("bincode"),
            bytes("json")
        );
    }

    let _ = writeln!(
        md,
        "\n## Stampede: 1,000 concurrent misses on one key, loader takes 20 ms\n\n\
         | backend | variant | time until all 1,000 are served | loader runs per round (min–max) | rounds |\n|---|---|---|---|---|"
    );
    for (backend, variant, fact, label) in [
        (
            "memory",
            "cache-core",
            "memory_cache_core",
            "cache-core `get_or_insert_with`",
        ),
        (
            "memory",
            "moka-get_with",
            "memory_moka_get_with",
            "moka `get_with`",
        ),
        (
            "redis",
            "cache-core",
            "redis_cache_core",
            "cache-core `get_or_insert_with`",
        ),
        (
            "redis",
            "naive-raw",
            "redis_naive_raw",
            "raw GET, on a miss load + SET (no single-flight)",
        ),
    ] {
        let f = run.facts.get(&format!("stampede_{fact}"));
        let n = |k: &str| {
            f.and_then(|f| f.get(k))
                .and_then(serde_json::Value::as_u64)
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string())
        };
        let _ = writeln!(
            md,
            "| {backend} | {label} | {} | {}–{} | {} |",
            t(&format!("stampede_{backend}"), variant),
            n("min_loader_runs"),
            n("max_loader_runs"),
            n("rounds")
        );
    }

    let g = "delete_pattern_100k";
    let a = run.bench(g, "cache-core").and_then(|b| b.time());
    let b = run.bench(g, "raw-scan-unlink").and_then(|b| b.time());
    let _ = writeln!(
        md,
        "\n## `delete_pattern` over 100,000 keys\n\n\
         Each iteration writes 100,000 keys (untimed), then removes them: cache-core's \
         `delete_pattern(\"del:*\")` against a raw loop of `SCAN MATCH bench:del:* COUNT 1000` + \
         `UNLINK` on the multiplexed connection. Both removed exactly 100,000 keys every time \
         (checked).\n\n\
         | cache-core | raw SCAN + UNLINK | cache-core / raw |\n|---|---|---|\n| {} | {} | {} |\n",
        time_fig(a),
        time_fig(b),
        median_ratio(a, b)
    );
}

fn ceiling_table(run: &Run, md: &mut String) {
    let _ = writeln!(
        md,
        "## The ceiling: `redis-benchmark` against the same server\n\n\
         Two shapes with N requests in flight: `-c 1 -P N`, one connection with N pipelined \
         requests (the shape of N tasks on one multiplexed connection, and so the server's \
         ceiling for it), and `-c N`, N connections with one request each (what a \
         connection-per-operation pool gets). `redis-benchmark` is one C thread with blocking \
         sockets. Values as large as the project's stored bytes (`-d`). Median of the runs, \
         range in brackets.\n\n\
         | op | value | in flight | `-c 1 -P N` | `-c N` | cache-core | cache-core / `-P N` |\n|---|---|---|---|---|---|---|"
    );
    for op in OPS {
        for (size, label, bytes) in SIZES {
            for (mode, tasks) in MODES {
                let pipelined = run.ceiling(op, bytes, tasks, true);
                let connections = run.ceiling(op, bytes, tasks, false);
                let ours = run
                    .bench(&format!("redis_{op}_{size}_{mode}"), "cache-core")
                    .and_then(|b| b.rate());
                let _ = writeln!(
                    md,
                    "| {} | {label} | {tasks} | {} | {} | {} | {} |",
                    op.to_uppercase(),
                    rate_fig(pipelined),
                    rate_fig(connections),
                    rate_fig(ours),
                    median_ratio(ours, pipelined)
                );
            }
        }
    }
    let _ = writeln!(md);
}

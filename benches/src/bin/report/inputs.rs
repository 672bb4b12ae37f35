//! Reading a run: criterion's samples, the facts, redis-benchmark's rates, the machine.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Median and range of one figure over its samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stat {
    pub(crate) fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Some(Self {
            median,
            min: values[0],
            max: values[values.len() - 1],
        })
    }
}

/// One criterion benchmark: nanoseconds per operation, one value per sample.
#[derive(Debug, Clone)]
pub(crate) struct Bench {
    pub(crate) ns_per_op: Vec<f64>,
}

impl Bench {
    /// Time per operation, ns.
    pub(crate) fn time(&self) -> Option<Stat> {
        Stat::of(self.ns_per_op.clone())
    }

    /// Operations per second.
    pub(crate) fn rate(&self) -> Option<Stat> {
        Stat::of(self.ns_per_op.iter().map(|ns| 1e9 / ns).collect())
    }
}

/// A paired ratio (project time / peer time per interleaved round).
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct Paired {
    pub(crate) median: f64,
    pub(crate) p10: f64,
    pub(crate) p90: f64,
}

/// One `redis-benchmark` rate.
#[derive(Debug, Clone)]
pub(crate) struct RedisBenchmark {
    pub(crate) op: String,
    pub(crate) size: u32,
    pub(crate) clients: u32,
    pub(crate) pipeline: u32,
    pub(crate) rps: f64,
}

/// Everything one run left behind.
#[derive(Debug)]
pub(crate) struct Run {
    /// (group, function) -> samples
    pub(crate) benches: BTreeMap<(String, String), Bench>,
    pub(crate) facts: BTreeMap<String, serde_json::Value>,
    pub(crate) redis_benchmark: Vec<RedisBenchmark>,
    /// `key: value` lines of machine.txt, in order.
    pub(crate) machine: Vec<(String, String)>,
    pub(crate) commands: String,
    /// `http/` of the run: what benches/http.sh measured, when it ran.
    pub(crate) http: Option<Http>,
}

/// One measured wrk run of benches/http.sh.
#[derive(Debug, Clone)]
pub(crate) struct HttpRun {
    /// `static`, `cached_memory`, `cached_redis`, `daily_off` or `daily_on`.
    pub(crate) row: String,
    pub(crate) round: u32,
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Responses that were not 2xx or 3xx.
    pub(crate) non2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub(crate) socket_errors: u64,
    /// CPU seconds (user + system) during the run: the server under load, redis-server,
    /// mariadbd, wrk, and the whole machine (every process, ours and others).
    pub(crate) cpu: HttpCpu,
}

/// CPU seconds spent during one wrk run, by process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpCpu {
    pub(crate) server: f64,
    pub(crate) redis: f64,
    pub(crate) db: f64,
    pub(crate) wrk: f64,
    /// The whole machine: user, nice, system, irq and softirq time of every core.
    pub(crate) busy: f64,
    /// Of `busy`, interrupt and softirq time (loopback TCP is processed there in part).
    pub(crate) irq: f64,
    /// Time the hypervisor ran something else on this VM's cores.
    pub(crate) steal: f64,
    /// Wall-clock seconds between the two readings.
    pub(crate) window: f64,
}

/// What benches/http.sh left in its directory: `rows.csv` (one wrk run a line: row, round,
/// then wrk.lua's `key=value` summary) and `http.txt` (`key: value` facts).
#[derive(Debug)]
pub(crate) struct Http {
    pub(crate) runs: Vec<HttpRun>,
    facts: Vec<(String, String)>,
}

impl Http {
    /// `None` when `dir` has no `rows.csv` (http.sh did not run).
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>, Box<dyn Error>> {
        let Ok(rows) = std::fs::read_to_string(dir.join("rows.csv")) else {
            return Ok(None);
        };
        let mut runs = Vec::new();
        for line in rows.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.split(',');
            let (Some(row), Some(round)) = (fields.next(), fields.next()) else {
                return Err(
                    format!("{}: bad line {line:?}", dir.join("rows.csv").display()).into(),
                );
            };
            let values: BTreeMap<&str, &str> = fields.filter_map(|f| f.split_once('=')).collect();
            let field = |key: &str| {
                values
                    .get(key)
                    .copied()
                    .ok_or_else(|| format!("rows.csv: no {key} in {line:?}"))
            };
            runs.push(HttpRun {
                row: row.to_owned(),
                round: round.parse()?,
                requests: field("requests")?.parse()?,
                rps: field("rps")?.parse()?,
                p50_us: field("p50_us")?.parse()?,
                p99_us: field("p99_us")?.parse()?,
                non2xx: field("non2xx")?.parse()?,
                socket_errors: field("socket_errors")?.parse()?,
                cpu: HttpCpu {
                    server: field("server_cpu_s")?.parse()?,
                    redis: field("redis_cpu_s")?.parse()?,
                    db: field("db_cpu_s")?.parse()?,
                    wrk: field("wrk_cpu_s")?.parse()?,
                    busy: field("busy_cpu_s")?.parse()?,
                    irq: field("irq_cpu_s")?.parse()?,
                    steal: field("steal_cpu_s")?.parse()?,
                    window: field("window_s")?.parse()?,
                },
            });
        }
        let facts = std::fs::read_to_string(dir.join("http.txt"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Some(Self { runs, facts }))
    }

    /// A fact of http.txt, `?` when absent.
    pub(crate) fn fact(&self, key: &str) -> &str {
        self.facts
            .iter()
            .find(|(k, _)| k == key)
            .map_or("?", |(_, v)| v.as_str())
    }

    /// The measured runs of one row, in round order.
    pub(crate) fn runs_of(&self, row: &str) -> Vec<&HttpRun> {
        let mut runs: Vec<&HttpRun> = self.runs.iter().filter(|r| r.row == row).collect();
        runs.sort_by_key(|r| r.round);
        runs
    }
}

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
}

#[derive(Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

impl Run {
    pub(crate) fn load(dir: &Path) -> Result<Self, Box<dyn Error>> {
        let mut benches = BTreeMap::new();
        for new in find_dirs_named(&dir.join("criterion"), "new") {
            let (Ok(b), Ok(s)) = (
                std::fs::read_to_string(new.join("benchmark.json")),
                std::fs::read_to_string(new.join("sample.json")),
            ) else {
                continue;
            };
            let b: BenchmarkJson = serde_json::from_str(&b)?;
            let s: SampleJson = serde_json::from_str(&s)?;
            let ns_per_op = s.times.iter().zip(&s.iters).map(|(t, i)| t / i).collect();
            benches.insert(
                (b.group_id, b.function_id.unwrap_or_default()),
                Bench { ns_per_op },
            );
        }
        if benches.is_empty() {
            return Err(format!(
                "no criterion results under {}",
                dir.join("criterion").display()
            )
            .into());
        }
        let mut facts = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir.join("facts")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if let (Some(name), Ok(text)) = (
                    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned),
                    std::fs::read_to_string(&path),
                ) {
                    facts.insert(name, serde_json::from_str(&text)?);
                }
            }
        }
        let redis_benchmark = std::fs::read_to_string(dir.join("redis-benchmark.csv"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                Some(RedisBenchmark {
                    op: f.first()?.to_lowercase(),
                    size: f.get(1)?.parse().ok()?,
                    clients: f.get(2)?.parse().ok()?,
                    pipeline: f.get(3)?.parse().ok()?,
                    rps: f.get(5)?.trim_matches('"').parse().ok()?,
                })
            })
            .collect();
        let machine = std::fs::read_to_string(dir.join("machine.txt"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Self {
            benches,
            facts,
            redis_benchmark,
            machine,
            commands: std::fs::read_to_string(dir.join("commands.txt")).unwrap_or_default(),
            http: Http::load(&dir.join("http"))?,
        })
    }

    pub(crate) fn bench(&self, group: &str, function: &str) -> Option<&Bench> {
        self.benches.get(&(group.to_owned(), function.to_owned()))
    }

    pub(crate) fn paired(&self, name: &str) -> Option<Paired> {
        self.facts
            .get(&format!("paired_{name}"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub(crate) fn machine(&self, key: &str) -> &str {
        self.machine
            .iter()
            .find(|(k, _)| k == key)
            .map_or("?", |(_, v)| v.as_str())
    }

    /// redis-benchmark's rate for one op and size with `in_flight` requests in flight: on
    /// as many connections (`pipelined` false) or on one connection (`pipelined` true).
    pub(crate) fn ceiling(
        &self,
        op: &str,
        size: u32,
        in_flight: u32,
        pipelined: bool,
    ) -> Option<Stat> {
        let (clients, pipeline) = if pipelined {
            (1, in_flight)
        } else {
            (in_flight, 1)
        };
        Stat::of(
            self.redis_benchmark
                .iter()
                .filter(|r| {
                    r.op == op && r.size == size && r.clients == clients && r.pipeline == pipeline
                })
                .map(|r| r.rps)
                .collect(),
        )
    }
}

fn find_dirs_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == name) {
                    found.push(path);
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

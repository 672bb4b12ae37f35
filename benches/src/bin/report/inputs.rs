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

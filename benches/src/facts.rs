//! Facts a bench establishes besides timings (loader runs, encoded sizes), for the report.

use std::path::PathBuf;

/// Records `value` under `name`: printed, and written to `$BENCH_FACTS_DIR/{name}.json` when set.
pub fn record(name: &str, value: &serde_json::Value) {
    println!("fact {name}: {value}");
    let Some(dir) = std::env::var_os("BENCH_FACTS_DIR").map(PathBuf::from) else {
        return;
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.json")), value.to_string()));
    if let Err(err) = written {
        eprintln!("cannot write fact {name} to {}: {err}", dir.display());
    }
}

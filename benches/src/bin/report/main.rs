//! Turns one `benches/run.sh` run into `benches/RESULTS.md` and `benches/throughput.png`.
//!
//! ```text
//! report RUN_DIR OUT_DIR
//! report --http HTTP_DIR
//! ```
//!
//! `RUN_DIR` is what run.sh filled: `criterion/` (criterion's JSON), `facts/` (paired ratios,
//! loader runs, encoded sizes), `redis-benchmark.csv`, `machine.txt`, `commands.txt` and
//! `http/` (benches/http.sh's wrk runs and facts). The
//! figures are read, never typed in. When `OUT_DIR/ANALYSIS.md` (hand-written: where the time
//! goes on a missed target) exists, RESULTS.md links to it. `--http` prints the HTTP section
//! alone from what `benches/http.sh` wrote (when it runs without run.sh).

mod chart;
mod http;
mod inputs;
mod markdown;
mod scale;

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let first = args.next();
    if first.as_deref() == Some(std::path::Path::new("--http")) {
        let dir = args.next().ok_or("usage: report --http HTTP_DIR")?;
        let loaded = inputs::Http::load(&dir)?;
        let http = loaded.ok_or_else(|| format!("no rows.csv in {}", dir.display()))?;
        let mut md = String::new();
        http::section(Some(&http), false, &mut md);
        print!("{md}");
        return Ok(());
    }
    let (Some(run_dir), Some(out_dir)) = (first, args.next()) else {
        return Err("usage: report RUN_DIR OUT_DIR (benches/run.sh calls it)".into());
    };
    let run = inputs::Run::load(&run_dir)?;
    let png = out_dir.join("throughput.png");
    chart::draw(&run, &png)?;
    let analysis = out_dir.join("ANALYSIS.md").exists();
    let md = markdown::render(&run, analysis);
    std::fs::write(out_dir.join("RESULTS.md"), md)?;
    println!(
        "wrote {} and {}",
        out_dir.join("RESULTS.md").display(),
        png.display()
    );
    Ok(())
}

//! Turns one `benches/run.sh` run into `benches/RESULTS.md` and `benches/throughput.png`.
//!
//! ```text
//! report RUN_DIR OUT_DIR
//! ```
//!
//! `RUN_DIR` is what run.sh filled: `criterion/` (criterion's JSON), `facts/` (paired ratios,
//! loader runs, encoded sizes), `redis-benchmark.csv`, `machine.txt` and `commands.txt`. The
//! figures are read, never typed in. When `OUT_DIR/ANALYSIS.md` (hand-written: where the time
//! goes on a missed target) exists, RESULTS.md links to it.

mod chart;
mod inputs;
mod markdown;

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(run_dir), Some(out_dir)) = (args.next(), args.next()) else {
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

//! Fixtures shared by the `cache-benches` criterion benches: the values measured, a
//! `redis-server` on loopback, the concurrent load driver, the raw-path envelope and the facts
//! (loader runs, encoded sizes) a bench records beside criterion's timings.
//!
//! Run the benches with `cargo bench -p cache-benches`, or everything (benches,
//! `redis-benchmark`, the report) with `benches/run.sh`. The environment they read:
//!
//! | variable | meaning |
//! |---|---|
//! | `BENCH_REDIS_URL` | a `redis://127.0.0.1:PORT/0` to measure against (loopback only): the redis and scale benches, and the memory bench's local-tier row; unset, each bench binary starts its own `redis-server` |
//! | `BENCH_QUICK` | `1`: shorter warm-up and measurement, 10 samples (the `run.sh --quick` mode) |
//! | `BENCH_FACTS_DIR` | where to write the facts as JSON files, for the report |
//! | `BENCH_PAIRED` | `0`: skip the paired ratio runs (when profiling one bench) |

pub mod data;
pub mod facts;
pub mod load;
pub mod paired;
pub mod raw;
pub mod read_through;
pub mod server;
pub mod settings;
pub mod stampede;
pub mod variants;

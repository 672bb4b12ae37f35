//! The run's report: `CAPACITY.md` (targets, per-phase figures, step loads, method) and the
//! chart of p50/p99 latency and throughput over time with the phase boundaries marked.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::record::{Phase, ms};
use crate::steps::{self, Step};

/// What one phase measured beyond the recorder's figures.
#[derive(Debug, Clone)]
pub(crate) struct PhaseFigures {
    /// The recorder's figures.
    pub(crate) phase: Phase,
    /// MariaDB `Questions` during the phase (unknown when it was down at a boundary).
    pub(crate) questions: Option<u64>,
    /// MariaDB statements by kind (`Com_*`) during the phase, when known.
    pub(crate) statements: Option<crate::stack::Counts>,
    /// Redis calls by command during the phase, when known (not across a Redis restart).
    pub(crate) redis: Option<crate::stack::Counts>,
    /// Cache hits and misses of all replicas during the phase.
    pub(crate) hits: u64,
    /// Misses.
    pub(crate) misses: u64,
    /// CPU seconds per process kind during the phase.
    pub(crate) cpu: Vec<(String, f64)>,
    /// What happened in it (the fault and its timing).
    pub(crate) note: String,
}

impl PhaseFigures {
    fn seconds(&self) -> f64 {
        (self.phase.span.1 - self.phase.span.0).max(0.001)
    }
}

/// One target of the issue and whether the run met it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The target.
    pub(crate) what: String,
    /// What the run measured.
    pub(crate) measured: String,
    /// Met or not.
    pub(crate) met: bool,
}

/// Everything the report shows.
#[derive(Debug)]
pub(crate) struct Report {
    /// `full`, `quick` or `smoke`.
    pub(crate) mode: String,
    /// How it was run.
    pub(crate) command: String,
    /// (fact, value) about the machine and the software.
    pub(crate) machine: Vec<(String, String)>,
    /// What the seed wrote.
    pub(crate) seed: String,
    /// Simulated users.
    pub(crate) users: u64,
    /// Mean think time, s.
    pub(crate) think_s: f64,
    /// The phases.
    pub(crate) phases: Vec<PhaseFigures>,
    /// Step load with the cache on, and with `CACHE_URL=none`.
    pub(crate) steps_on: Vec<Step>,
    /// With `CACHE_URL=none`.
    pub(crate) steps_off: Vec<Step>,
    /// The targets.
    pub(crate) targets: Vec<Target>,
    /// Total wall time, s.
    pub(crate) wall_s: f64,
    /// The chart's file name (beside the report).
    pub(crate) chart: String,
    /// The first lines of the oracle's violation log.
    pub(crate) violations: Vec<String>,
    /// The machine's CPU time, read each second.
    pub(crate) cpu_samples: Vec<crate::cpu::Sample>,
}

/// "93% / 0.2% / 0.0%": busy, iowait and steal shares of the machine over a span, or "n/a".
fn machine_shares(samples: &[crate::cpu::Sample], span: (f64, f64)) -> String {
    crate::cpu::shares(samples, span).map_or_else(
        || "n/a".to_owned(),
        |s| {
            format!(
                "{:.0}% / {:.1}% / {:.1}%",
                s.busy * 100.0,
                s.iowait * 100.0,
                s.steal * 100.0
            )
        },
    )
}

/// "Redis commands per request: 2.31 (evalsha 1.00, get 0.52, ...)", the largest first, the
/// small ones folded into "other".
fn per_request(what: &str, counts: &crate::stack::Counts, requests: f64) -> String {
    let requests = requests.max(1.0);
    let total: u64 = counts.values().sum();
    let mut kinds: Vec<(&String, &u64)> = counts.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = Vec::new();
    let mut other = 0;
    for (name, &n) in kinds {
        if n as f64 / requests >= 0.005 {
            parts.push(format!("`{name}` {:.3}", n as f64 / requests));
        } else {
            other += n;
        }
    }
    if other > 0 {
        parts.push(format!("other {:.3}", other as f64 / requests));
    }
    format!(
        "{what} per request: {:.3} ({}).",
        total as f64 / requests,
        parts.join(", ")
    )
}

fn fmt_ms(micros: u64) -> String {
    let v = ms(micros);
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn statuses(map: &std::collections::BTreeMap<u16, u64>) -> String {
    map.iter()
        .map(|(s, n)| {
            if *s == 0 {
                format!("none: {n}")
            } else {
                format!("{s}: {n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ratio of `a` to `b` as text, `n/a` when `b` is 0.
fn ratio(a: f64, b: f64, digits: usize) -> String {
    if b > 0.0 {
        format!("{:.digits$}", a / b)
    } else {
        "n/a".to_owned()
    }
}

impl Report {
    /// The Markdown text.
    #[must_use]
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Capacity and chaos run\n\n\
             Written by `benches/capacity.sh` (the `capacity` driver, `benches/capacity/`) at the \
             end of a run: regenerated by every full run, never edited by hand. Mode: **{}**, \
             {} simulated users, one action each every {:.0} s on average; {:.0} s in all.\n",
            self.mode, self.users, self.think_s, self.wall_s
        );
        let _ = writeln!(md, "## Machine and software\n\n| | |\n|---|---|");
        for (k, v) in &self.machine {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let _ = writeln!(
            md,
            "\nEverything (MariaDB, Redis, three replicas, nginx and the driver) shares this \
             machine's cores: the CPU table of each phase shows who used them.\n\n\
             Command: `{}`\n\nSeed: {}\n",
            self.command, self.seed
        );
        let _ = writeln!(
            md,
            "## Targets\n\n| target | measured | met |\n|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                t.what,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(
            md,
            "\n## Phases\n\n![p50/p99 latency and throughput over the run, phases marked]({})\n\n\
             Latency is from the instant each request was scheduled (see Method). \"failed\" is \
             every response that was not 2xx, and requests that got none.\n\n\
             | phase | s | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | failed | 5xx | oracle violations / checks | unverified writes | cache hit ratio | DB queries / request | CPU s / 1k requests | machine busy / iowait / steal |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            self.chart
        );
        for f in &self.phases {
            let p = &f.phase;
            let all = p.all_latency();
            let requests = p.requests();
            let cpu: f64 = f.cpu.iter().map(|(_, s)| s).sum();
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                p.name,
                f.seconds(),
                requests,
                requests as f64 / f.seconds(),
                fmt_ms(all.value_at_quantile(0.5)),
                fmt_ms(all.value_at_quantile(0.95)),
                fmt_ms(all.value_at_quantile(0.99)),
                fmt_ms(all.max()),
                p.failed(),
                p.with_status(500..600),
                p.violations,
                p.checked,
                p.unverified_writes,
                ratio(f.hits as f64, (f.hits + f.misses) as f64, 3),
                f.questions.map_or_else(
                    || "n/a (database restarted)".to_owned(),
                    |q| ratio(q as f64, requests as f64, 3)
                ),
                ratio(cpu * 1000.0, requests as f64, 2),
                machine_shares(&self.cpu_samples, p.span),
            );
        }
        for f in &self.phases {
            let p = &f.phase;
            let _ = writeln!(md, "\n### {}\n\n{}\n", p.name, f.note);
            if p.logins > 0 {
                let _ = writeln!(md, "Users signed in during the phase: {}.\n", p.logins);
            }
            if p.resent > 0 {
                let _ = writeln!(
                    md,
                    "Requests sent again by the client, safe to repeat (GET, DELETE, a meal \
                     write with its `Idempotency-Key`, the goal `PATCH`), after no answer or a \
                     502: {}.\n",
                    p.resent
                );
            }
            if !p.error_codes.is_empty() {
                let codes: Vec<String> = p
                    .error_codes
                    .iter()
                    .map(|((status, code), n)| format!("{status} `{code}`: {n}"))
                    .collect();
                let _ = writeln!(md, "Error answers by code: {}.\n", codes.join(", "));
            }
            let _ = writeln!(
                md,
                "| route | requests | p50 ms | p95 ms | p99 ms | max ms | statuses |\n|---|---|---|---|---|---|---|"
            );
            for (route, r) in &p.routes {
                let _ = writeln!(
                    md,
                    "| `{route}` | {} | {} | {} | {} | {} | {} |",
                    r.statuses.values().sum::<u64>(),
                    fmt_ms(r.latency.value_at_quantile(0.5)),
                    fmt_ms(r.latency.value_at_quantile(0.95)),
                    fmt_ms(r.latency.value_at_quantile(0.99)),
                    fmt_ms(r.latency.max()),
                    statuses(&r.statuses)
                );
            }
            let requests = p.requests() as f64;
            let cpu: Vec<String> = f
                .cpu
                .iter()
                .map(|(name, s)| format!("{name} {}", ratio(s * 1000.0, requests, 2)))
                .collect();
            let _ = writeln!(
                md,
                "\nCPU seconds per 1,000 requests: {}. Cache: {} hits, {} misses. MariaDB \
                 questions: {}.",
                cpu.join(", "),
                f.hits,
                f.misses,
                f.questions
                    .map_or_else(|| "n/a".to_owned(), |q| q.to_string())
            );
            if let Some(m) = crate::cpu::shares(&self.cpu_samples, p.span) {
                let _ = writeln!(
                    md,
                    "\nThe machine (all cores, `/proc/stat`): busy {:.1}%, iowait {:.1}%, steal \
                     {:.1}%; its worst second had {:.1}% steal and {:.1}% iowait.",
                    m.busy * 100.0,
                    m.iowait * 100.0,
                    m.steal * 100.0,
                    m.worst_steal * 100.0,
                    m.worst_iowait * 100.0
                );
            }
            for (what, counts) in [
                ("MariaDB statements", &f.statements),
                ("Redis commands", &f.redis),
            ] {
                if let Some(counts) = counts {
                    let _ = writeln!(md, "\n{}", per_request(what, counts, requests));
                }
            }
        }
        for (title, list) in [
            ("cache on (Redis + local tier)", &self.steps_on),
            ("`CACHE_URL=none`", &self.steps_off),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "\n## Step load, {title}\n\nSustained: **{}** requests/s (p99 under {} ms and \
                 under {}% errors).\n\n| offered req/s | achieved ok/s | p50 ms | p99 ms | errors | sustained | machine busy / iowait / steal |\n|---|---|---|---|---|---|---|",
                steps::sustained(list).map_or_else(|| "none".to_owned(), |r| format!("{r:.0}")),
                steps::P99_LIMIT_MS,
                steps::ERROR_LIMIT * 100.0
            );
            let mut previous_rate = None;
            for s in list {
                // A rate run twice in a row is the retry of a miss (see Method).
                let again = if previous_rate == Some(s.offered) {
                    " (again)"
                } else {
                    ""
                };
                previous_rate = Some(s.offered);
                let _ = writeln!(
                    md,
                    "| {:.0}{again} | {:.0} | {:.1} | {:.1} | {:.2}% | {} | {} |",
                    s.offered,
                    s.achieved,
                    s.p50_ms,
                    s.p99_ms,
                    s.error_share * 100.0,
                    if s.passed { "yes" } else { "no" },
                    machine_shares(&self.cpu_samples, s.span)
                );
            }
        }
        if !self.violations.is_empty() {
            let _ = writeln!(
                md,
                "\n## Oracle violations\n\nThe first {} lines of `violations.log`: when, which \
                 user, the request ids of its writes since its last good read and of the read \
                 that contradicted them, each `@` the replica that answered.\n\n```",
                self.violations.len()
            );
            for line in &self.violations {
                let _ = writeln!(md, "{line}");
            }
            let _ = writeln!(md, "```");
        }
        md.push_str(METHOD);
        md
    }
}

/// How the run measures, for the report's readers.
const METHOD: &str = "
## Method

- **The stack**, all on 127.0.0.1, started by the driver in the run directory: MariaDB (its own
  data directory, 512 MiB buffer pool), Redis (no persistence), three `calories-app` release
  replicas with the Kubernetes ConfigMap's settings (`APP_ENV=production`,
  `DATABASE_MAX_CONNECTIONS=10`, `CACHE_LOCAL_CAPACITY=10000`, `CACHE_LOCAL_TTL_SECONDS=5`,
  `PASSWORD_HASH_CONCURRENCY=1`, `TRUST_FORWARDED_FOR=true`), and nginx as the ingress: round
  robin, keep-alive to the replicas, `proxy_next_upstream error timeout http_502` (nginx never
  retries POST or PATCH without `non_idempotent`, so only idempotent requests are retried; 503
  is the app's own answer, database down or hashing busy, and is passed on: counted as a
  failure it would take every healthy replica out during a database outage), passive
  health checks (`max_fails=3 fail_timeout=5s`) and ingress-nginx's 5 s connect timeout.
- **Changed from the ConfigMap for the run, and why.** Every simulated user comes from
  127.0.0.1 through nginx, so the per-IP and per-user limits (`RATE_LIMIT_*`) are raised to a
  million a minute: the limiter still counts every request in Redis, it never refuses.
  `JWT_TTL_SECONDS=14400` so that access tokens outlive the run (no refresh storm in a phase);
  `RUST_LOG=warn` (the ConfigMap's `info` writes a line per request: gigabytes over a run).
- **Users, not requests.** Each simulated user signs in once (Argon2 on a replica; at most a
  few logins at once, `Retry-After` honoured on 503), reads its day and profile, then loops:
  open the day 36%, log a meal then read the day 12%, weekly stats 10%, monthly stats 5%,
  profile view 12%, goal edit then profile and day 3%, food search 18%, photo upload then day
  1%, meal delete then day 3%: about one request in eight is a write. Each write costs at least
  one query and invalidates what the read after it reloads, so writes alone put a floor under
  the database queries per request that no cache removes.
- **No coordinated omission.** A user's next action is scheduled at the previous *scheduled*
  time plus an exponential think time, whatever the server did, and the action's first request
  is timed from that scheduled instant (the wrk2 approach): a stall is charged in full. The
  requests that follow within an action (the read after a write) depend on the first and are
  timed from their send. The step load is open-loop: the k-th request is due at
  start + k / rate, timed from then. A rate that misses is run once more (marked again) before
  the search ends, since one stall of the shared machine can put a short step over the
  limit; the sustained rate is the highest that passed a try.
- **The oracle.** Each user is the only writer of its own data and does one action at a time,
  so it knows what its day must hold: the meals of the day it last read, plus the meals it
  logged (201), minus those it deleted (204, or 404: nginx may retry a DELETE). Every read of
  the day (meal ids, total, goal), of the profile (goal) and of the stats (today's kcal and
  meal count, goal) is checked against that, whichever replica answers; a contradiction is a
  violation, logged with the request ids (`X-Request-Id`, echoed in the app's logs) of the
  writes and the read, each with the replica that answered it (nginx's `X-Upstream`), to
  `violations.log` in the run directory; the user's model is kept (a stale read does not
  become the expectation). A write with an unknown outcome
  (no response, 5xx) may or may not have happened: that user's checks pause for 10 s (beyond
  the local tier's 5 s TTL) and its model is rebuilt from its next reads; such writes are
  counted as \"unverified\".
- **Client retries.** A request that is safe to repeat is sent again, at most twice, when its
  connection to nginx closed or reset before any response (nginx's old workers close their
  kept-alive connections on a reload) or nginx answered 502 (the replica died with it in
  flight): GET and DELETE by their method (RFC 9110, 9.2.2), the meal writes because each
  carries an `Idempotency-Key` (its request id; the app answers a repeat with the meal the
  first copy logged, `Idempotent-Replayed: true`), and the goal `PATCH` because it sets a
  value. Resends go on a new connection; login is never resent. Resends are counted per
  phase; a request that failed after them counts as failed, and a resent DELETE answered 404
  counts as done (204): the first copy deleted the meal and its answer was lost.
- **Settle.** The ramp's logins (an Argon2 hash each, CPU-bound) overload the machine, and
  the users' actions scheduled meanwhile queue up; the phase after the ramp (\"settle\") is
  when that backlog is served, reported apart so that \"steady\" measures all users at their
  rate rather than the ramp's aftermath. Nothing is dropped: the settle phase's requests
  keep their latency from their scheduled time.
- **Faults**, each in its own phase while the users keep their sessions: Redis SIGKILLed and
  restarted on the same port (empty, as a Redis without persistence comes back); one replica
  SIGKILLed and restarted; a rolling restart in which each replica is taken out of nginx's
  upstreams (a reload, as the ingress controller does when an endpoint goes), given 2 s (the
  Deployment's preStop sleep, shortened), sent SIGTERM, waited for, started again, waited for
  until `/health/ready` answers, and put back; MariaDB stopped by SIGTERM and started again on
  its data directory and port.
- **Figures.** Per phase: the driver's histograms (HdrHistogram, 3 significant digits) and
  status counts per route; the cache hit ratio from each replica's `/metrics`
  (`cache_hits_total`, `cache_misses_total`, scraped directly, deltas over the phase, a
  restarted replica counted from zero); MariaDB's `Questions` (statements received) delta;
  CPU from `/proc/PID/stat` (utime + stime) of each process, nginx's workers included; and the
  whole machine's time from `/proc/stat`, read each second: busy, iowait (the disk), steal (the
  hypervisor running another guest), over the phase or step and in its worst second, so a
  stall can be laid on the stack, the disk or the host.
";

/// Where a TrueType font may be: `BENCH_FONT`, then Debian's fonts-dejavu-core.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn register_font() -> Result<(), Box<dyn Error>> {
    let candidates = std::env::var("BENCH_FONT")
        .ok()
        .into_iter()
        .chain(FONTS.iter().map(|s| (*s).to_owned()));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a usable TrueType font").into());
        }
    }
    Err("no TrueType font found: install fonts-dejavu-core or set BENCH_FONT".into())
}

/// Draws p50 and p99 latency (top) and throughput (bottom) per second, with the phases'
/// starts as vertical lines.
///
/// # Errors
/// No font, or the PNG cannot be written.
pub(crate) fn chart(
    path: &Path,
    series: &[(u64, u64, f64, f64)],
    phases: &[(String, f64)],
) -> Result<(), Box<dyn Error>> {
    register_font()?;
    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let end = series.last().map_or(1, |s| s.0 + 1) as f64;
    // A log scale: milliseconds in steady state and seconds in an outage on one chart.
    let floor = 0.1;
    let p99_max = series
        .iter()
        .map(|s| s.3)
        .fold(10.0_f64, f64::max)
        .min(10_000.0);
    let mut latency = ChartBuilder::on(&top)
        .caption(
            "latency (ms, from the scheduled send; log scale)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, (floor..p99_max * 1.5).log_scale())?;
    latency
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    latency
        .draw_series(LineSeries::new(
            series
                .iter()
                .map(|s| (s.0 as f64, s.2.clamp(floor, p99_max))),
            blue.stroke_width(2),
        ))?
        .label("p50")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    latency
        .draw_series(LineSeries::new(
            series
                .iter()
                .map(|s| (s.0 as f64, s.3.clamp(floor, p99_max))),
            red.stroke_width(2),
        ))?
        .label("p99")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    let grey = RGBColor(120, 120, 120);
    for (name, at) in phases {
        latency.draw_series(std::iter::once(PathElement::new(
            vec![(*at, floor), (*at, p99_max * 1.5)],
            grey,
        )))?;
        latency.draw_series(std::iter::once(Text::new(
            name.clone(),
            (*at + end * 0.003, p99_max * 1.2),
            ("sans-serif", 11).into_font().color(&grey),
        )))?;
    }
    let rate_max = series.iter().map(|s| s.1).max().unwrap_or(1).max(1) as f64;
    let mut rate = ChartBuilder::on(&bottom)
        .caption("throughput (responses per second)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..rate_max * 1.05)?;
    rate.configure_mesh()
        .x_desc("seconds")
        .y_desc("req/s")
        .draw()?;
    rate.draw_series(LineSeries::new(
        series.iter().map(|s| (s.0 as f64, s.1 as f64)),
        RGBColor(44, 160, 44).stroke_width(2),
    ))?;
    for (_, at) in phases {
        rate.draw_series(std::iter::once(PathElement::new(
            vec![(*at, 0.0), (*at, rate_max * 1.05)],
            grey,
        )))?;
    }
    root.present()?;
    Ok(())
}

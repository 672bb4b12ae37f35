//! Machine-wide CPU time, sampled from `/proc/stat` each second, so that a latency stall can be
//! told apart: the stack saturating both cores (busy), the disk (iowait), or the hypervisor
//! running someone else (steal).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::record::Recorder;

/// The machine's CPU time so far, in clock ticks, summed over all cores (the `cpu` line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Times {
    /// user + nice + system + irq + softirq (guest time is inside user).
    pub(crate) busy: u64,
    /// Idle.
    pub(crate) idle: u64,
    /// Idle with disk I/O outstanding.
    pub(crate) iowait: u64,
    /// Time the hypervisor gave to another guest while this one wanted to run.
    pub(crate) steal: u64,
}

impl Times {
    /// Parses the `cpu ` line of `/proc/stat`; `None` when there is none or it is malformed.
    ///
    /// ```text
    /// cpu  user nice system idle iowait irq softirq steal guest guest_nice
    /// ```
    pub(crate) fn parse(proc_stat: &str) -> Option<Self> {
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if fields.len() < 4 {
            return None;
        }
        let at = |i: usize| fields.get(i).copied().unwrap_or(0);
        Some(Self {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3),
            iowait: at(4),
            steal: at(7),
        })
    }

    fn total(self) -> u64 {
        self.busy + self.idle + self.iowait + self.steal
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// Where the machine's time went over a span, as shares of all cores' time, and the worst
/// single second for steal and iowait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shares {
    /// Busy share, 0..=1.
    pub(crate) busy: f64,
    /// Iowait share.
    pub(crate) iowait: f64,
    /// Steal share.
    pub(crate) steal: f64,
    /// The highest steal share of any one second in the span.
    pub(crate) worst_steal: f64,
    /// The highest iowait share of any one second in the span.
    pub(crate) worst_iowait: f64,
}

/// One reading: seconds since the recorder started, and the counters then.
pub(crate) type Sample = (f64, Times);

/// Where the machine's time went between the first and the last sample inside `span`
/// (seconds since the recorder started); `None` with fewer than two samples in it.
#[must_use]
pub(crate) fn shares(samples: &[Sample], span: (f64, f64)) -> Option<Shares> {
    let inside: Vec<Times> = samples
        .iter()
        .filter(|(t, _)| *t >= span.0 && *t <= span.1)
        .map(|(_, times)| *times)
        .collect();
    let (first, last) = (*inside.first()?, *inside.last()?);
    let whole = last.since(first);
    if whole.total() == 0 {
        return None;
    }
    let share = |part: u64, of: Times| part as f64 / of.total().max(1) as f64;
    let mut worst_steal = 0.0_f64;
    let mut worst_iowait = 0.0_f64;
    for pair in inside.windows(2) {
        let second = pair[1].since(pair[0]);
        worst_steal = worst_steal.max(share(second.steal, second));
        worst_iowait = worst_iowait.max(share(second.iowait, second));
    }
    Some(Shares {
        busy: share(whole.busy, whole),
        iowait: share(whole.iowait, whole),
        steal: share(whole.steal, whole),
        worst_steal,
        worst_iowait,
    })
}

/// Reads `/proc/stat` once a second into a list of samples, until the returned handle is
/// aborted or the runtime stops.
pub(crate) fn sample_every_second(
    recorder: Arc<Recorder>,
) -> (Arc<Mutex<Vec<Sample>>>, tokio::task::JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&samples);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // After a stall, one late reading rather than a burst of readings a few ms apart,
        // whose tiny windows would make a "worst second" out of a single tick.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let read = std::fs::read_to_string("/proc/stat").unwrap_or_default();
            if let Some(times) = Times::parse(&read) {
                let at = recorder.elapsed().as_secs_f64();
                into.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((at, times));
            }
        }
    });
    (samples, task)
}

#[cfg(test)]
#[allow(clippy::expect_used)] // A failed expectation is the test failing.
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n";

    #[test]
    fn the_cpu_line_is_summed_into_busy_idle_iowait_and_steal() {
        assert_eq!(
            Times::parse(STAT),
            Some(Times {
                busy: 100 + 5 + 50 + 3 + 2,
                idle: 1000,
                iowait: 20,
                steal: 10,
            })
        );
        assert_eq!(Times::parse("intr 1 2 3\n"), None);
        assert_eq!(Times::parse("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn shares_cover_the_span_and_the_worst_second_is_found() {
        let t = |busy, idle, iowait, steal| Times {
            busy,
            idle,
            iowait,
            steal,
        };
        let samples = vec![
            (0.5, t(0, 0, 0, 0)),
            (1.5, t(100, 100, 0, 0)),
            (2.5, t(200, 150, 0, 50)),
            (3.5, t(300, 250, 0, 50)),
            (9.0, t(1000, 1000, 1000, 1000)),
        ];
        let s = shares(&samples, (1.0, 4.0)).expect("three samples in the span");
        assert!((s.busy - 200.0 / 400.0).abs() < 1e-9);
        assert!((s.steal - 50.0 / 400.0).abs() < 1e-9);
        assert!(s.iowait.abs() < 1e-9);
        assert!((s.worst_steal - 0.25).abs() < 1e-9);
        assert_eq!(shares(&samples, (4.0, 5.0)), None);
    }
}

//! Runs a benchmark row: ours and a peer alternately (A B A B) after one warm-up of each, and reduces the
//! timings to median, min and max. Rows whose sides run as child processes may also report their peak
//! memory (VmHWM, measured by `/usr/bin/time`, see [`measured_shell`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// One timed action: a run of ours or of a peer. Called once for the warm-up and once per pair.
pub type Job = Box<dyn FnMut() -> anyhow::Result<()>>;

/// One row of the table: our implementation and a peer doing the same work on the same data.
pub struct Pair {
    /// Row id shown in the table and accepted on the command line (`sha256-vs-openssl`).
    pub id: String,
    /// Our implementation.
    pub ours: Job,
    /// The peer's name as shown in the table (`openssl`).
    pub peer_name: String,
    /// The peer doing the same work.
    pub peer: Job,
}

/// Median, fastest and slowest of a set of timings.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    /// Median in seconds (mean of the middle two for an even count).
    pub median_s: f64,
    /// Fastest run in seconds.
    pub min_s: f64,
    /// Slowest run in seconds.
    pub max_s: f64,
}

impl Stats {
    /// Reduces timings to their median, min and max; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Stats> {
        let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        secs.sort_by(f64::total_cmp);
        let n = secs.len();
        let median_s = match n {
            0 => return None,
            _ if n % 2 == 1 => secs[n / 2],
            _ => (secs[n / 2 - 1] + secs[n / 2]) / 2.0,
        };
        Some(Stats {
            median_s,
            min_s: secs[0],
            max_s: secs[n - 1],
        })
    }
}

/// The measured result of one row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Row id.
    pub id: String,
    /// Our timings.
    pub ours: Stats,
    /// Peer name.
    pub peer_name: String,
    /// The peer's timings.
    pub peer: Stats,
    /// Ours median divided by the peer's median: below 1 means we are faster.
    pub ratio: f64,
    /// Number of A B pairs measured (warm-up excluded).
    pub pairs: usize,
    /// Our peak memory (largest VmHWM of the measured runs, KiB), for rows that measure it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours_peak_kib: Option<u64>,
    /// The peer's peak memory (KiB), for rows that measure it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_peak_kib: Option<u64>,
}

/// Which side of a row a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// Our implementation.
    Ours,
    /// The peer.
    Peer,
}

/// Peak memory seen per (row, side), in KiB.
static PEAKS: Mutex<BTreeMap<(String, Side), u64>> = Mutex::new(BTreeMap::new());

/// Records a peak-memory measurement (KiB) of one run; the row keeps the largest.
pub fn record_peak(row: &str, side: Side, kib: u64) {
    let mut peaks = PEAKS.lock().unwrap_or_else(|p| p.into_inner());
    let slot = peaks.entry((row.to_string(), side)).or_insert(0);
    *slot = (*slot).max(kib);
}

fn take_peak(row: &str, side: Side) -> Option<u64> {
    let mut peaks = PEAKS.lock().unwrap_or_else(|p| p.into_inner());
    peaks.remove(&(row.to_string(), side))
}

/// Like [`shell`], run under `/usr/bin/time -f %M` (the child's peak resident set, i.e. its VmHWM, in KiB,
/// which Linux reports as the largest of the process and its waited-for descendants); every run's peak is
/// recorded for `row`/`side`. `scratch` is a directory for the measurement file.
pub fn measured_shell(row: &str, side: Side, cmdline: &str, scratch: &Path) -> Job {
    let report: PathBuf = scratch.join(format!(
        "peak-{row}-{}.txt",
        if side == Side::Ours { "ours" } else { "peer" }
    ));
    let mut job = shell(&format!(
        "/usr/bin/time -f %M -o {} sh -c {}",
        quote(&report.to_string_lossy()),
        quote(cmdline)
    ));
    let row = row.to_string();
    Box::new(move || {
        job()?;
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("/usr/bin/time wrote no report at {}", report.display()))?;
        let kib = text
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .with_context(|| format!("no peak memory in {}: {text:?}", report.display()))?;
        record_peak(&row, side, kib);
        Ok(())
    })
}

/// Runs one warm-up of each side, then `pairs` alternating runs (ours, peer, ours, peer, ...).
pub fn run_pair(pair: &mut Pair, pairs: usize) -> anyhow::Result<Outcome> {
    if pairs == 0 {
        bail!("--pairs must be at least 1");
    }
    (pair.ours)().with_context(|| format!("{}: warm-up of ours failed", pair.id))?;
    (pair.peer)().with_context(|| format!("{}: warm-up of {} failed", pair.id, pair.peer_name))?;
    // Peaks count the measured runs only (a warm-up may do more, e.g. fill a cache).
    take_peak(&pair.id, Side::Ours);
    take_peak(&pair.id, Side::Peer);
    let mut ours = Vec::with_capacity(pairs);
    let mut peer = Vec::with_capacity(pairs);
    for i in 0..pairs {
        ours.push(time(&mut pair.ours).with_context(|| format!("{}: ours, run {i}", pair.id))?);
        peer.push(
            time(&mut pair.peer)
                .with_context(|| format!("{}: {}, run {i}", pair.id, pair.peer_name))?,
        );
    }
    let (Some(ours), Some(peer)) = (Stats::of(&ours), Stats::of(&peer)) else {
        bail!("{}: no timings recorded", pair.id);
    };
    Ok(Outcome {
        id: pair.id.clone(),
        ours,
        peer_name: pair.peer_name.clone(),
        peer,
        ratio: ours.median_s / peer.median_s,
        pairs,
        ours_peak_kib: take_peak(&pair.id, Side::Ours),
        peer_peak_kib: take_peak(&pair.id, Side::Peer),
    })
}

thread_local! {
    /// Time spent in [`untimed`] during the current run.
    static UNTIMED: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Runs `f` inside a job without counting its time: for preparing each run (deleting what the previous one
/// stored, flushing the page cache) where the preparation cannot happen outside the job.
pub fn untimed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    UNTIMED.with(|u| u.set(u.get() + start.elapsed()));
    out
}

fn time(job: &mut Job) -> anyhow::Result<Duration> {
    UNTIMED.with(|u| u.set(Duration::ZERO));
    let start = Instant::now();
    job()?;
    Ok(start
        .elapsed()
        .saturating_sub(UNTIMED.with(std::cell::Cell::get)))
}

/// A job that runs `cmdline` with `sh -c`, discarding stdout; it fails with the command's stderr when the exit
/// status is not zero, and names the tool when the shell cannot find it.
pub fn shell(cmdline: &str) -> Job {
    let cmdline = cmdline.to_string();
    Box::new(move || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmdline)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start `sh -c {cmdline}`"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(127) {
            let tool = cmdline.split_whitespace().next().unwrap_or_default();
            bail!("peer tool `{tool}` is not installed (`{cmdline}` exited 127): {stderr}");
        }
        bail!("`{cmdline}` failed with {}: {stderr}", out.status)
    })
}

/// Quotes `s` for `sh` (single quotes, with embedded ones escaped).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Prints outcomes as an aligned text table.
pub fn print_table(outcomes: &[Outcome]) {
    let header = [
        "row",
        "ours median",
        "ours min-max",
        "peer",
        "peer median",
        "peer min-max",
        "ours/peer",
        "peak ours/peer",
    ];
    let rows: Vec<[String; 8]> = outcomes
        .iter()
        .map(|o| {
            [
                o.id.clone(),
                secs(o.ours.median_s),
                format!("{}-{}", secs(o.ours.min_s), secs(o.ours.max_s)),
                o.peer_name.clone(),
                secs(o.peer.median_s),
                format!("{}-{}", secs(o.peer.min_s), secs(o.peer.max_s)),
                format!("{:.2}", o.ratio),
                match (o.ours_peak_kib, o.peer_peak_kib) {
                    (None, None) => "-".to_string(),
                    (a, b) => format!("{}/{}", mib(a), mib(b)),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_string(),
        |k| format!("{:.0}MiB", k as f64 / 1024.0),
    )
}

fn secs(s: f64) -> String {
    format!("{s:.3}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = |ms: u64| Duration::from_millis(ms);
        let s = Stats::of(&[d(30), d(10), d(20)]).unwrap();
        assert_eq!((s.median_s, s.min_s, s.max_s), (0.02, 0.01, 0.03));
        let s = Stats::of(&[d(40), d(10), d(20), d(30)]).unwrap();
        assert!((s.median_s - 0.025).abs() < 1e-9);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn pairs_alternate_ours_and_peer_after_one_warm_up_each() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let log = Rc::new(RefCell::new(String::new()));
        let (a, b) = (log.clone(), log.clone());
        let mut pair = Pair {
            id: "t".into(),
            ours: Box::new(move || {
                a.borrow_mut().push('A');
                Ok(())
            }),
            peer_name: "p".into(),
            peer: Box::new(move || {
                b.borrow_mut().push('B');
                Ok(())
            }),
        };
        let outcome = run_pair(&mut pair, 3).unwrap();
        assert_eq!(*log.borrow(), "ABABABAB");
        assert_eq!(outcome.pairs, 3);
    }

    #[test]
    fn shell_job_reports_failure_and_missing_tool() {
        assert!(shell("true")().is_ok());
        let err = shell("false")().unwrap_err().to_string();
        assert!(err.contains("`false` failed"), "{err}");
        let err = shell("no-such-tool-xyz --flag")().unwrap_err().to_string();
        assert!(err.contains("`no-such-tool-xyz` is not installed"), "{err}");
    }

    #[test]
    fn quote_survives_single_quotes() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote("it's a b")))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"it's a b");
    }
}

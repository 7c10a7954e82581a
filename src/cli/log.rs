//! Logging: warnings and errors on stderr (through the progress bar, so they print above it),
//! every line `RECAGENT_LOG` allows in the run's log file once setup succeeded (what setup logged
//! is written to it then).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context as _, Result};
use indicatif::ProgressBar;

/// Set once the run's rounds start (the log file is open): from then on at most [`ROUND_CAP`]
/// warnings per round reach stderr, so a failing server (one fallback per request) does not
/// flood the terminal; every one of them is in the log file.
static IN_ROUNDS: AtomicBool = AtomicBool::new(false);

/// Warnings printed on stderr per round, at most.
pub(crate) const ROUND_CAP: u64 = 5;

/// Warnings of the current round: printed, and left to the log file only.
static ROUND_PRINTED: AtomicU64 = AtomicU64::new(0);
static ROUND_HELD: AtomicU64 = AtomicU64::new(0);

/// The progress bar of the running command, if any: stderr lines are printed with the bar
/// suspended (cleared, then redrawn below them).
static BAR: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);

/// Makes `pb` the bar stderr lines print above (`None`: none).
pub(crate) fn set_bar(pb: Option<ProgressBar>) {
    *BAR.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = pb;
}

/// Writes `text` (whole lines) to stderr above the progress bar.
pub(crate) fn eprint_above_bar(text: &str) {
    use std::io::Write as _;
    let bar = BAR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let print = || {
        let _ = std::io::stderr().write_all(text.as_bytes());
    };
    match bar {
        Some(b) => b.suspend(print),
        None => print(),
    }
}

/// Ends a round for the stderr cap: when warnings were held back, says how many and where they
/// are (`note: round 3: 12 more warnings in run.log`).
pub(crate) fn round_done(round: u32, log: &Path) {
    let held = ROUND_HELD.swap(0, Ordering::Relaxed);
    ROUND_PRINTED.store(0, Ordering::Relaxed);
    if held > 0 {
        eprint_above_bar(&format!(
            "note: round {round}: {held} more warning{} in {}\n",
            if held == 1 { "" } else { "s" },
            log.display()
        ));
    }
}

/// A stderr line, collected and printed at once (above the bar) when the event is formatted.
struct StderrLine(Vec<u8>);

impl std::io::Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            eprint_above_bar(&String::from_utf8_lossy(&self.0));
        }
    }
}

/// The log file, once the run's setup succeeded; until then the lines meant for it are kept in
/// memory, so a failed start never truncates an earlier run's log.
pub(crate) enum LogFile {
    Pending(Vec<u8>),
    Open(std::fs::File),
}

pub(crate) static LOG_FILE: std::sync::Mutex<LogFile> =
    std::sync::Mutex::new(LogFile::Pending(Vec::new()));

/// A handle on [`LOG_FILE`] for the subscriber's file layer.
pub(crate) struct LogFileWriter;

impl std::io::Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *LOG_FILE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            LogFile::Pending(v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            LogFile::Open(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *LOG_FILE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            LogFile::Pending(_) => Ok(()),
            LogFile::Open(f) => f.flush(),
        }
    }
}

/// Stderr lines: `warning: <message> <fields>` (or `error: ...`), like the command's own errors.
struct StderrFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for StderrFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if IN_ROUNDS.load(Ordering::Relaxed)
            && ROUND_PRINTED.fetch_add(1, Ordering::Relaxed) >= ROUND_CAP
        {
            // Nothing written: the line is in the log file only (counted for `round_done`).
            ROUND_HELD.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let label = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            _ => "note",
        };
        write!(w, "{label}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `RECAGENT_LOG` (default `info`), with the item index's library (hnsw_rs and its distance
/// crate) at `warn` unless `RECAGENT_LOG` names it: it logs about 20 INFO lines (its parameters,
/// its dump) at every start. `RECAGENT_LOG=info,hnsw_rs=info` brings them back.
fn env_filter() -> tracing_subscriber::EnvFilter {
    let wanted = std::env::var("RECAGENT_LOG").unwrap_or_else(|_| "info".into());
    let directives = if wanted.contains("hnsw_rs") || wanted.contains("anndists") {
        wanted
    } else {
        format!("{wanted},hnsw_rs=warn,anndists=warn")
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .or_else(|_| tracing_subscriber::EnvFilter::try_new("info,hnsw_rs=warn,anndists=warn"))
        .unwrap_or_else(|_| "info".into())
}

/// Installs the logger: warnings and errors to stderr (above the progress bar) and, with
/// `to_file`, every line `RECAGENT_LOG` allows (default `info`) to the log file, which
/// [`open_log`] opens once setup succeeded (lines logged before are written then).
pub(crate) fn init_log(to_file: bool) {
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrLine(Vec::new()))
        .with_ansi(false)
        .event_format(StderrFormat)
        .with_filter(env_filter().and(LevelFilter::WARN));
    let file = to_file.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(|| LogFileWriter)
            .with_ansi(false)
            .with_target(true)
            .with_filter(env_filter())
    });
    // A second initialisation (never done here) would only keep the first logger.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// Opens the log file (appending, or truncating an earlier run's), writes the lines logged
/// during setup, and caps the warnings later rounds print on stderr ([`ROUND_CAP`]).
pub(crate) fn open_log(path: &Path, append: bool) -> Result<()> {
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    let mut state = LOG_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let LogFile::Pending(lines) = &*state {
        std::io::Write::write_all(&mut file, lines)
            .with_context(|| format!("writing log file {}", path.display()))?;
    }
    *state = LogFile::Open(file);
    drop(state);
    IN_ROUNDS.store(true, Ordering::Relaxed);
    Ok(())
}

//! Logging: warnings on stderr while a run is set up, every line `RECAGENT_LOG` allows in the
//! run's log file once setup succeeded (what setup logged is written to it then).

use std::path::Path;

use anyhow::{Context as _, Result};

/// While true, warnings and errors are also printed on stderr: during setup (before the run's
/// first round), so a problem found while building the simulation is seen, and for the commands
/// without a log file. Rounds log to the file only (per-request fallbacks would flood stderr
/// and break the progress bar).
pub(crate) static LOG_TO_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

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

/// Installs the logger: warnings and errors to stderr while [`LOG_TO_STDERR`] is set and, with
/// `to_file`, every line `RECAGENT_LOG` allows (default `info`) to the log file, which
/// [`open_log`] opens once setup succeeded (lines logged before are written then).
pub(crate) fn init_log(to_file: bool) {
    use tracing_subscriber::filter::{filter_fn, FilterExt as _, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(StderrFormat)
        .with_filter(env_filter().and(LevelFilter::WARN).and(filter_fn(|_| {
            LOG_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed)
        })));
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
/// during setup, and sends later lines there only (not to stderr).
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
    LOG_TO_STDERR.store(false, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

//! Logging to a daily file in the log dir, never to the terminal (stdout is the data channel of
//! `stream` and the TUI owns the screen). Every line passes through [`crate::secret::redact`]
//! before it leaves the process.

use crate::config::Config;
use crate::secret::redact;
use anyhow::Context as _;
use std::io::{self, Write};
use std::path::Path;
use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Log file name prefix; files are `tickmux.YYYY-MM-DD.log`.
pub const FILE_PREFIX: &str = "tickmux";
/// Log file name suffix.
pub const FILE_SUFFIX: &str = "log";
/// Daily files kept.
pub const MAX_FILES: usize = 14;

/// A [`MakeWriter`] whose writers redact secrets from each event before passing it on.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wrap a writer factory.
    pub fn new(inner: M) -> Self {
        RedactingMakeWriter { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Buffers one event and writes it redacted on flush or drop. Buffering matters: a secret
/// split across two `write` calls would slip past a per-call redaction.
#[derive(Debug)]
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let clean = redact(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
        self.inner.write_all(clean.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

/// The filter: `RUST_LOG` when set and valid, else `level` (a level or directive list).
pub fn filter(level: &str) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// A non-blocking daily-rolling file writer in `dir` (created if missing).
pub fn file_writer(dir: &Path) -> anyhow::Result<(NonBlocking, WorkerGuard)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating log directory {}", dir.display()))?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix(FILE_SUFFIX)
        .max_log_files(MAX_FILES)
        .build(dir)
        .with_context(|| format!("opening a log file in {}", dir.display()))?;
    Ok(tracing_appender::non_blocking(appender))
}

/// A subscriber writing redacted lines to `dir`. Keep the guard alive: dropping it flushes.
pub fn subscriber(
    filter: EnvFilter,
    dir: &Path,
) -> anyhow::Result<(Box<dyn Subscriber + Send + Sync>, WorkerGuard)> {
    let (writer, guard) = file_writer(dir)?;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(true)
        .with_writer(RedactingMakeWriter::new(writer));
    let sub = tracing_subscriber::registry().with(filter).with(layer);
    Ok((Box::new(sub), guard))
}

/// Install the global file logger from the config. Returns the guard to keep alive in `main`.
pub fn init(cfg: &Config) -> anyhow::Result<WorkerGuard> {
    let dir = cfg
        .log_dir()
        .context("no log directory: set [log] dir in the config file")?;
    let (sub, guard) = subscriber(filter(&cfg.log.level), &dir)?;
    tracing::subscriber::set_global_default(sub).context("a logger is already installed")?;
    // Panics go to the log too (redacted); the default hook still prints to stderr.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {}", redact(&info.to_string()));
        prev(info);
    }));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), dir = %dir.display(), "tickmux starting");
    Ok(guard)
}

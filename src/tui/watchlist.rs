//! The saved watchlist: `watchlist.json` in the data dir, written atomically on every change
//! (not on quit, so a killed process or a dropped ssh session loses nothing).
//!
//! A file that cannot be parsed is never overwritten: it is moved aside to
//! `watchlist.json.corrupt-<unix-ts>` and reported. A missing file means the starter list on
//! the simulator and an empty list on a real broker (nothing is subscribed on a real account
//! unless the user asks for it).

use super::app::WatchItem;
use crate::model::Mode;
use serde::{Deserialize, Serialize};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// File name inside the data dir.
pub const FILE_NAME: &str = "watchlist.json";
/// Format version written to the file.
pub const VERSION: u32 = 1;

/// On-disk shape; the version leaves room for a later format change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchlistFile {
    version: u32,
    items: Vec<WatchItem>,
}

/// `<data dir>/watchlist.json`, if the platform has a data dir.
pub fn default_path() -> Option<PathBuf> {
    crate::config::data_dir().map(|d| d.join(FILE_NAME))
}

/// The starter watchlist (the demo's symbols, quote mode).
pub fn starter() -> Vec<WatchItem> {
    crate::cli::demo::STARTER
        .iter()
        .map(|s| WatchItem {
            symbol: (*s).to_string(),
            mode: Mode::Quote,
        })
        .collect()
}

/// What was found at start.
#[derive(Debug)]
pub struct Loaded {
    /// The list to start with.
    pub items: Vec<WatchItem>,
    /// Problems to show in the event log (already logged with tracing).
    pub problems: Vec<String>,
    /// False when saving would overwrite a file we could not read or move aside.
    pub writable: bool,
}

/// Load the watchlist at `path`; see the module docs for missing and corrupt files.
pub fn load(path: &Path, simulator: bool) -> Loaded {
    let fresh = || if simulator { starter() } else { Vec::new() };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Loaded {
                items: fresh(),
                problems: Vec::new(),
                writable: true,
            };
        }
        Err(e) => {
            let msg = format!(
                "unreadable watchlist {}: {e}; changes will not be saved this session",
                path.display()
            );
            tracing::warn!("{msg}");
            return Loaded {
                items: fresh(),
                problems: vec![msg],
                writable: false,
            };
        }
    };
    match parse(&text) {
        Ok(items) => Loaded {
            items,
            problems: Vec::new(),
            writable: true,
        },
        Err(err) => {
            let aside = corrupt_path(path, crate::cli::unix_ms() / 1000);
            let start = if simulator {
                "the starter list"
            } else {
                "an empty list"
            };
            // "corrupt" first: the event log clips long lines.
            let (msg, writable) = match std::fs::rename(path, &aside) {
                Ok(()) => (
                    format!(
                        "corrupt watchlist kept aside as {} ({err}); started with {start}",
                        aside.display()
                    ),
                    true,
                ),
                Err(e) => (
                    format!(
                        "corrupt watchlist {} ({err}) could not be moved aside ({e}); started \
                         with {start}, changes will not be saved this session",
                        path.display()
                    ),
                    false,
                ),
            };
            tracing::warn!("{msg}");
            Loaded {
                items: fresh(),
                problems: vec![msg],
                writable,
            }
        }
    }
}

/// Parse the file's text.
pub fn parse(text: &str) -> Result<Vec<WatchItem>, String> {
    let f: WatchlistFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if f.version != VERSION {
        return Err(format!(
            "unsupported version {} (expected {VERSION})",
            f.version
        ));
    }
    Ok(f.items)
}

/// `watchlist.json.corrupt-<unix_secs>` next to `path`.
pub fn corrupt_path(path: &Path, unix_secs: i64) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{unix_secs}"));
    path.with_file_name(name)
}

/// Write atomically: temp file in the same dir, fsync, rename over `path`, fsync the dir.
/// Creates the directory if missing.
pub fn save(path: &Path, items: &[WatchItem]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let body = serde_json::to_vec_pretty(&WatchlistFile {
        version: VERSION,
        items: items.to_vec(),
    })
    .map_err(io::Error::other)?;
    let tmp = dir.join(format!(
        ".{FILE_NAME}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable only once the directory entry is; best effort off Unix.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Background writer: the latest list wins, so a burst of changes costs one write, and the
/// UI loop never touches the disk.
pub struct Saver {
    tx: Option<watch::Sender<Option<Vec<WatchItem>>>>,
    task: JoinHandle<()>,
}

impl Saver {
    /// Start the writer for `path`; write errors are sent (try_send) to `errors`.
    pub fn spawn(path: PathBuf, errors: mpsc::Sender<String>) -> Saver {
        let (tx, mut rx) = watch::channel::<Option<Vec<WatchItem>>>(None);
        let task = tokio::spawn(async move {
            // `changed` still reports a value sent just before the sender was dropped, so
            // the last change before quit is written.
            while rx.changed().await.is_ok() {
                let Some(items) = rx.borrow_and_update().clone() else {
                    continue;
                };
                let p = path.clone();
                let res = tokio::task::spawn_blocking(move || save(&p, &items)).await;
                let err = match res {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                let msg = format!("cannot save watchlist {}: {err}", path.display());
                tracing::warn!("{msg}");
                let _ = errors.try_send(msg);
            }
        });
        Saver { tx: Some(tx), task }
    }

    /// Queue `items` for writing (replaces any list not yet written).
    pub fn save(&self, items: Vec<WatchItem>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Some(items));
        }
    }

    /// Write what is pending and stop; bounded so quitting never hangs on a stuck disk.
    pub async fn finish(mut self, limit: std::time::Duration) {
        self.tx = None;
        if tokio::time::timeout(limit, &mut self.task).await.is_err() {
            tracing::warn!("watchlist writer did not finish within {limit:?}");
            self.task.abort();
        }
    }
}

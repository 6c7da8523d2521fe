//! The saved watchlist: round trip, atomic writes that leave no temp files, corrupt files kept
//! aside and reported (never silently replaced), missing directories created, and the
//! background writer (latest wins, the last change before exit is written).

use std::path::Path;
use std::time::Duration;
use tickmux::model::Mode;
use tickmux::tui::app::WatchItem;
use tickmux::tui::watchlist::{self, Saver};

fn item(symbol: &str, mode: Mode) -> WatchItem {
    WatchItem {
        symbol: symbol.into(),
        mode,
    }
}

fn sample() -> Vec<WatchItem> {
    vec![
        item("NSE:INFY", Mode::Quote),
        item("NSE:NIFTY 50", Mode::Ltp),
        item("NFO:SYNTH3", Mode::Depth),
    ]
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(watchlist::FILE_NAME);
    watchlist::save(&path, &sample()).unwrap();
    let loaded = watchlist::load(&path, true);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert!(loaded.writable);
    assert_eq!(loaded.items, sample());
    // Human-readable JSON with a version, so a later format can be told apart.
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["items"][1]["symbol"], "NSE:NIFTY 50");
    assert_eq!(v["items"][1]["mode"], "ltp");

    // An empty list is a real state (after unsubscribe-all), not "missing".
    watchlist::save(&path, &[]).unwrap();
    assert!(watchlist::load(&path, true).items.is_empty());
}

#[test]
fn atomic_write_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(watchlist::FILE_NAME);
    for i in 0..20 {
        let list: Vec<WatchItem> = (0..i)
            .map(|n| item(&format!("NFO:SYNTH{n}"), Mode::Quote))
            .collect();
        watchlist::save(&path, &list).unwrap();
        assert_eq!(names(dir.path()), vec![watchlist::FILE_NAME.to_string()]);
        assert_eq!(watchlist::load(&path, true).items.len(), i);
    }
}

#[test]
fn failed_write_keeps_the_old_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(watchlist::FILE_NAME);
    watchlist::save(&path, &sample()).unwrap();
    // Renaming a file over a directory fails: the old content must survive untouched.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    assert!(watchlist::save(&blocked, &[]).is_err());
    assert_eq!(names(dir.path()), vec!["blocked", watchlist::FILE_NAME]);
    assert_eq!(watchlist::load(&path, true).items, sample());
}

#[test]
fn corrupt_file_is_kept_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(watchlist::FILE_NAME);
    let junk = "{\"version\": 1, \"items\": [ {\"symbol\": \"NSE:INFY\", ";
    std::fs::write(&path, junk).unwrap();

    let loaded = watchlist::load(&path, true);
    assert_eq!(
        loaded.items,
        watchlist::starter(),
        "simulator: starter list"
    );
    assert!(loaded.writable);
    assert_eq!(loaded.problems.len(), 1);
    let msg = &loaded.problems[0];
    assert!(
        msg.contains("corrupt") && msg.contains(".corrupt-"),
        "{msg}"
    );

    let files = names(dir.path());
    assert!(
        !files.contains(&watchlist::FILE_NAME.to_string()),
        "{files:?}"
    );
    let aside: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("watchlist.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{files:?}");
    let ts: i64 = aside[0]
        .trim_start_matches("watchlist.json.corrupt-")
        .parse()
        .unwrap();
    assert!(ts > 1_600_000_000, "unix seconds: {ts}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(aside[0])).unwrap(),
        junk,
        "the corrupt content is kept byte for byte"
    );
    assert!(msg.contains(aside[0].as_str()), "{msg}");

    // Valid JSON of the wrong shape or version is corrupt too; a real broker starts empty.
    std::fs::write(&path, "[\"NSE:INFY\"]").unwrap();
    let loaded = watchlist::load(&path, false);
    assert!(loaded.items.is_empty());
    assert_eq!(loaded.problems.len(), 1);
    std::fs::write(&path, "{\"version\": 9, \"items\": []}").unwrap();
    let loaded = watchlist::load(&path, false);
    assert!(
        loaded.problems[0].contains("version 9"),
        "{:?}",
        loaded.problems
    );
}

#[test]
fn missing_file_means_starter_on_the_simulator_and_empty_on_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(watchlist::FILE_NAME);
    let sim = watchlist::load(&path, true);
    assert!(sim.problems.is_empty() && sim.writable);
    let symbols: Vec<&str> = sim.items.iter().map(|i| i.symbol.as_str()).collect();
    assert_eq!(symbols, tickmux::cli::demo::STARTER);
    assert!(sim.items.iter().all(|i| i.mode == Mode::Quote));
    let broker = watchlist::load(&path, false);
    assert!(broker.items.is_empty() && broker.problems.is_empty());
    assert!(names(dir.path()).is_empty(), "loading never writes");
}

#[test]
fn missing_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/tickmux").join(watchlist::FILE_NAME);
    watchlist::save(&path, &sample()).unwrap();
    assert_eq!(watchlist::load(&path, true).items, sample());
}

#[test]
fn corrupt_path_names_the_timestamp() {
    let p = Path::new("/x/watchlist.json");
    assert_eq!(
        watchlist::corrupt_path(p, 1_700_000_000),
        Path::new("/x/watchlist.json.corrupt-1700000000")
    );
}

#[tokio::test]
async fn saver_writes_the_latest_list_and_flushes_at_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join(watchlist::FILE_NAME);
    let (tx, mut errors) = tokio::sync::mpsc::channel(8);
    let saver = Saver::spawn(path.clone(), tx);
    for n in 1..=50 {
        let list: Vec<WatchItem> = (0..n)
            .map(|i| item(&format!("NFO:SYNTH{i}"), Mode::Ltp))
            .collect();
        saver.save(list);
    }
    // Sent just before finish: must still be written.
    saver.save(vec![item("NSE:TCS", Mode::Depth)]);
    saver.finish(Duration::from_secs(10)).await;
    assert_eq!(
        watchlist::load(&path, true).items,
        vec![item("NSE:TCS", Mode::Depth)]
    );
    assert!(errors.try_recv().is_err(), "no write errors");
    assert_eq!(names(path.parent().unwrap()), vec![watchlist::FILE_NAME]);
}

#[tokio::test]
async fn saver_reports_write_errors() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a directory: every write fails, and says so.
    let path = dir.path().join("dir");
    std::fs::create_dir(&path).unwrap();
    let (tx, mut errors) = tokio::sync::mpsc::channel(8);
    let saver = Saver::spawn(path.clone(), tx);
    saver.save(sample());
    saver.finish(Duration::from_secs(10)).await;
    let msg = errors.try_recv().expect("an error is reported");
    assert!(msg.contains("cannot save watchlist"), "{msg}");
}

//! The TUI runtime: brings the feed up, owns the terminal and runs the one event loop
//! (tui.md §5). The loop never awaits the engine or the disk: engine commands go to a small
//! executor task, watchlist writes to the [`Saver`]; ticks are never events here — the book
//! is read once per frame, so a tick storm costs nothing beyond the frame rate.

use super::app::{App, AppInit, Cmd, ProxyPane};
use super::keymap::Keymap;
use super::terminal::{self, Tui};
use super::view;
use super::watchlist::{self, Saver};
use crate::cli::{setup, unix_ms};
use crate::config::Config;
use crate::engine::book::QuoteBook;
use crate::engine::{Consumer, EngineEvent, EngineHandle};
use crate::proxy::{Proxy, ProxyStats, apikey};
use crate::sim::SimControl;
use anyhow::Context as _;
use chrono::{Offset as _, TimeZone as _, Utc};
use crossterm::event::{Event, EventStream, KeyEventKind, MouseEventKind};
use futures_util::StreamExt as _;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::Rect;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// How the TUI runs (command line over `[tui]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Frame cap.
    pub fps: u32,
    /// Mouse capture.
    pub mouse: bool,
}

/// Bound of the loop → executor queue; commands are human-paced, so full means stuck.
const EXEC_QUEUE: usize = 256;
/// Bound on waiting for the executor and the watchlist writer at exit.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// IST offset from UTC, seconds.
const IST_OFFSET: i32 = 5 * 3600 + 30 * 60;

/// An event of our own for the event log (errors of commands, watchlist problems).
pub fn local_event(kind: &'static str, text: impl Into<String>) -> EngineEvent {
    EngineEvent {
        at_unix_ms: unix_ms(),
        kind,
        text: text.into(),
    }
}

/// `NO_COLOR` set to anything non-empty means the monochrome theme (no-color.org).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The host's zone when it is not IST (shown as a warning), else `None`.
pub fn host_zone() -> Option<String> {
    let tz = std::env::var("TZ").ok().filter(|t| !t.trim().is_empty());
    host_zone_from(tz.as_deref(), local_offset_secs(), system_zone_name)
}

/// [`host_zone`] with its inputs explicit (tests): `TZ`, the local UTC offset now, and a
/// lookup of the system zone's name.
pub fn host_zone_from(
    tz: Option<&str>,
    offset_secs: i32,
    system_name: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let is_ist = |z: &str| {
        matches!(
            z.trim_start_matches(':'),
            "Asia/Kolkata" | "Asia/Calcutta" | "IST-5:30" | "IST-05:30"
        )
    };
    if let Some(z) = tz
        && !is_ist(z)
    {
        return Some(z.trim_start_matches(':').to_string());
    }
    if offset_secs == IST_OFFSET {
        return None;
    }
    Some(system_name().unwrap_or_else(|| {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let m = offset_secs.unsigned_abs() / 60;
        format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
    }))
}

fn local_offset_secs() -> i32 {
    chrono::Local
        .offset_from_utc_datetime(&Utc::now().naive_utc())
        .fix()
        .local_minus_utc()
}

/// `Europe/London` from the `/etc/localtime` link, where the system has one.
fn system_zone_name() -> Option<String> {
    let target = std::fs::read_link("/etc/localtime").ok()?;
    let s = target.to_string_lossy();
    let (_, name) = s.split_once("zoneinfo/")?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Where fault injection goes.
#[derive(Clone)]
enum Faults {
    /// The embedded simulator.
    Embedded(SimControl),
    /// A `tickmux sim` process, through its control URL.
    Remote(String),
    /// A real broker.
    Unavailable,
}

/// Run the TUI until quit or a signal. The caller has checked for a terminal.
pub async fn run(cfg: &Config, opts: Options) -> anyhow::Result<ExitCode> {
    let mut feed = setup::start(cfg).await?;
    let faults = match (&feed.sim, cfg.external_sim()) {
        (Some(sim), _) => Faults::Embedded(sim.control()),
        (None, Some(ep)) => Faults::Remote(ep.rest_url),
        (None, None) => Faults::Unavailable,
    };
    let (keymap, keymap_errors) = Keymap::with_overrides(&cfg.keys);
    for e in &keymap_errors {
        tracing::warn!("[keys]: {e}");
    }
    let path = watchlist::default_path();
    let loaded = match &path {
        Some(p) => watchlist::load(p, cfg.uses_sim()),
        None => watchlist::Loaded {
            items: if cfg.uses_sim() {
                watchlist::starter()
            } else {
                Vec::new()
            },
            problems: vec!["no data directory on this platform; the watchlist is not saved".into()],
            writable: false,
        },
    };
    let master = Arc::new(std::mem::take(&mut feed.master));
    // The proxy resolves its clients' symbols through the same master.
    let proxy = start_proxy(cfg, &feed, master.clone()).await;
    let (mut app, initial) = App::new(AppInit {
        source: feed.source.clone(),
        simulator: !matches!(faults, Faults::Unavailable),
        master,
        keymap,
        keymap_errors,
        watchlist: loaded.items,
        mono: no_color(),
        host_tz: host_zone(),
    });
    for p in loaded.problems {
        app.on_event(local_event("watchlist", p));
    }
    let mut proxy_stats = match &proxy {
        Ok(Some(p)) => {
            app.on_event(local_event(
                "proxy",
                format!(
                    "OpenAlgo-compatible proxy on {} (API key: `tickmux key`)",
                    p.url()
                ),
            ));
            Some(p.stats())
        }
        Ok(None) => None,
        Err(e) => {
            // A busy port must not stop the monitor: say so and carry on without it.
            let text = format!("{e:#}");
            tracing::warn!("{text}");
            app.on_event(local_event("proxy", format!("not started: {text}")));
            app.on_proxy(ProxyPane::Failed(short_reason(&text)));
            None
        }
    };
    // Listen before subscribing: the first subscription triggers the connect events.
    let events = feed.engine.events();
    let consumer = feed.engine.consumer().await?;
    let (exec_tx, exec_rx) = mpsc::channel(EXEC_QUEUE);
    let (report_tx, report_rx) = mpsc::channel(64);
    let executor = tokio::spawn(execute(
        exec_rx,
        consumer,
        feed.engine.clone(),
        faults,
        report_tx.clone(),
    ));
    let saver = match (path, loaded.writable) {
        (Some(p), true) => Some(Saver::spawn(p, report_tx_text(report_tx))),
        _ => None,
    };
    let mut ui = Loop {
        app,
        exec_tx,
        saver: saver.as_ref(),
        quit: false,
    };
    ui.dispatch(initial);

    let result = match terminal::enter(opts.mouse).context("setting up the terminal") {
        Ok((term, guard)) => {
            let r = ui
                .run(
                    term,
                    opts,
                    &feed.engine,
                    events,
                    report_rx,
                    proxy_stats.as_mut(),
                )
                .await;
            drop(guard);
            r
        }
        Err(e) => Err(e),
    };
    let Loop { exec_tx, .. } = ui;
    drop(exec_tx);
    if tokio::time::timeout(EXIT_WAIT, executor).await.is_err() {
        tracing::warn!("engine commands still pending at exit");
    }
    if let Some(s) = saver {
        s.finish(EXIT_WAIT).await;
    }
    if let Ok(Some(p)) = proxy {
        p.shutdown().await;
    }
    feed.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// The proxy, when `[proxy] enabled` (the default): `Ok(None)` when disabled.
async fn start_proxy(
    cfg: &Config,
    feed: &setup::Feed,
    master: Arc<crate::instruments::InstrumentMaster>,
) -> anyhow::Result<Option<Proxy>> {
    if !cfg.proxy.enabled {
        return Ok(None);
    }
    let path = cfg
        .proxy
        .key_path(cfg)
        .context("no data directory for the proxy's API key; set [proxy] key_file")?;
    let key = apikey::load_or_create(&path)?;
    Proxy::start(cfg.proxy.proxy_config(), feed.engine.clone(), master, key)
        .await
        .map(Some)
}

/// The gist of a start error for the one-line pane ("port busy").
fn short_reason(text: &str) -> String {
    if text.contains("in use") {
        "port busy".into()
    } else {
        text.chars().take(60).collect()
    }
}

/// Watchlist write errors arrive as text; turn them into event-log lines.
fn report_tx_text(tx: mpsc::Sender<EngineEvent>) -> mpsc::Sender<String> {
    let (stx, mut srx) = mpsc::channel::<String>(8);
    tokio::spawn(async move {
        while let Some(msg) = srx.recv().await {
            if tx.send(local_event("watchlist", msg)).await.is_err() {
                return;
            }
        }
    });
    stx
}

/// Runs engine and simulator commands in order, off the UI loop, so a slow engine (or a
/// simulator under a slow-writes fault) never freezes the screen. Owns the TUI's consumer:
/// it lives until the loop ends, so unsubscribe-all keeps the upstream session.
async fn execute(
    mut rx: mpsc::Receiver<Cmd>,
    consumer: Consumer,
    engine: EngineHandle,
    faults: Faults,
    report: mpsc::Sender<EngineEvent>,
) {
    const NO_SIM: &str = "fault injection needs the built-in simulator";
    while let Some(cmd) = rx.recv().await {
        let res: Result<(), String> = match cmd {
            Cmd::Subscribe(list, mode) => {
                let n = list.len();
                consumer
                    .subscribe(list, mode)
                    .await
                    .map_err(|e| format!("subscribe ({n} instruments, {mode}) failed: {e}"))
            }
            Cmd::Unsubscribe(keys) => consumer
                .unsubscribe(keys)
                .await
                .map_err(|e| format!("unsubscribe failed: {e}")),
            Cmd::UnsubscribeAll => consumer
                .unsubscribe_all()
                .await
                .map_err(|e| format!("unsubscribe-all failed: {e}")),
            Cmd::ForceReconnect => engine
                .force_reconnect()
                .await
                .map_err(|e| format!("force reconnect failed: {e}")),
            Cmd::InjectFault(fault, dur) => match &faults {
                Faults::Embedded(sim) => {
                    sim.inject(fault, dur);
                    Ok(())
                }
                Faults::Remote(url) => {
                    crate::sim::inject_remote(url, &fault, dur.map(|d| d.as_secs_f64()))
                        .await
                        .map_err(|e| format!("fault injection failed: {e:#}"))
                }
                Faults::Unavailable => Err(NO_SIM.into()),
            },
            Cmd::ClearFaults => match &faults {
                Faults::Embedded(sim) => {
                    sim.clear();
                    Ok(())
                }
                Faults::Remote(url) => crate::sim::clear_remote(url)
                    .await
                    .map_err(|e| format!("clearing faults failed: {e:#}")),
                Faults::Unavailable => Err(NO_SIM.into()),
            },
            // Handled by the loop itself.
            Cmd::SaveWatchlist(_) | Cmd::Quit => Ok(()),
        };
        if let Err(text) = res {
            tracing::warn!("{text}");
            if report.send(local_event("error", text)).await.is_err() {
                break;
            }
        }
    }
    drop(consumer);
}

/// What the loop owns besides the terminal.
struct Loop<'a> {
    app: App,
    exec_tx: mpsc::Sender<Cmd>,
    saver: Option<&'a Saver>,
    quit: bool,
}

impl Loop<'_> {
    fn dispatch(&mut self, cmds: Vec<Cmd>) {
        for cmd in cmds {
            match cmd {
                Cmd::Quit => self.quit = true,
                Cmd::SaveWatchlist(items) => {
                    if let Some(s) = self.saver {
                        s.save(items);
                    }
                }
                other => {
                    if let Err(e) = self.exec_tx.try_send(other) {
                        let text = format!("engine busy; command dropped ({e})");
                        tracing::warn!("{text}");
                        self.app.on_event(local_event("error", text));
                    }
                }
            }
        }
        if self.app.should_quit() {
            self.quit = true;
        }
    }

    async fn run(
        &mut self,
        mut term: Tui,
        opts: Options,
        engine: &EngineHandle,
        mut events: tokio::sync::broadcast::Receiver<EngineEvent>,
        mut reports: mpsc::Receiver<EngineEvent>,
        mut proxy: Option<&mut watch::Receiver<ProxyStats>>,
    ) -> anyhow::Result<()> {
        let period = Duration::from_secs_f64(1.0 / f64::from(opts.fps.max(1)));
        let mut health = engine.health();
        let mut health_open = true;
        let mut events_open = true;
        let mut input = EventStream::new();
        let mut signals = Signals::new()?;
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        clock.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let frame = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(frame);
        let mut last_draw: Option<Instant> = None;
        // Something other than the book changed since the last draw.
        let mut dirty = true;
        self.app.on_health(health.borrow_and_update().clone());
        if let Some(p) = proxy.as_deref_mut() {
            self.app
                .on_proxy(ProxyPane::On(p.borrow_and_update().clone()));
        }
        self.app.set_clock(Utc::now());
        while !self.quit {
            // Arm the next frame: when something is dirty or rows may be ticking.
            let armed = dirty || !self.app.paused();
            if armed {
                let at = last_draw.map_or_else(Instant::now, |t| t + period);
                if frame.deadline() != at {
                    frame.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                sig = signals.recv() => {
                    tracing::info!("{sig}: leaving the TUI");
                    break;
                }
                () = terminal::wait_panic() => {
                    anyhow::bail!("internal error (a task panicked); see the log file");
                }
                ev = input.next() => match ev {
                    Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                        let cmds = self.app.on_key(k);
                        self.dispatch(cmds);
                        dirty = true;
                    }
                    Some(Ok(Event::Mouse(m))) => {
                        // Only the wheel means something here (capture is opt-in).
                        let name = match m.kind {
                            MouseEventKind::ScrollUp => Some("up"),
                            MouseEventKind::ScrollDown => Some("down"),
                            _ => None,
                        };
                        if let Some(a) = name.and_then(super::action::Action::from_name) {
                            let cmds = self.app.update(a);
                            self.dispatch(cmds);
                            dirty = true;
                        }
                    }
                    Some(Ok(Event::Resize(..) | Event::FocusGained)) => dirty = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("reading the terminal"),
                    None => {
                        tracing::info!("terminal input closed");
                        break;
                    }
                },
                r = health.changed(), if health_open => {
                    if r.is_ok() {
                        self.app.on_health(health.borrow_and_update().clone());
                        dirty = true;
                    } else {
                        health_open = false;
                    }
                }
                ev = events.recv(), if events_open => {
                    match ev {
                        Ok(e) => self.app.on_event(e),
                        Err(RecvError::Lagged(n)) => self.app.on_events_lagged(n),
                        Err(RecvError::Closed) => events_open = false,
                    }
                    dirty = true;
                }
                Some(r) = proxy_changed(proxy.as_deref_mut()) => {
                    if r {
                        if let Some(p) = proxy.as_deref_mut() {
                            self.app.on_proxy(ProxyPane::On(p.borrow_and_update().clone()));
                        }
                    } else {
                        proxy = None;
                        self.app.on_proxy(ProxyPane::Failed("stopped".into()));
                    }
                    dirty = true;
                }
                Some(ev) = reports.recv() => {
                    self.app.on_event(ev);
                    dirty = true;
                }
                _ = clock.tick() => {
                    self.app.set_clock(Utc::now());
                    dirty = true;
                }
                () = &mut frame, if armed => {
                    let now = Instant::now();
                    draw(&mut term, &mut self.app, engine, now)?;
                    last_draw = Some(now);
                    dirty = false;
                    debug_panic::after_first_frame();
                }
            }
            if self.app.should_quit() {
                self.quit = true;
            }
        }
        terminal::restore().context("restoring the terminal")?;
        Ok(())
    }
}

/// Test hook, debug builds only: `TICKMUX_DEBUG_PANIC=ui` panics in the event loop and
/// `=task` in a spawned task after the first frame, so the end-to-end tests can show that a
/// panic restores the terminal. Release builds compile it to nothing.
mod debug_panic {
    #[cfg(debug_assertions)]
    pub fn after_first_frame() {
        use std::sync::Once;
        static ONCE: Once = Once::new();
        let Ok(kind) = std::env::var("TICKMUX_DEBUG_PANIC") else {
            return;
        };
        ONCE.call_once(|| match kind.as_str() {
            "ui" => panic!("TICKMUX_DEBUG_PANIC=ui: test panic in the event loop"),
            "task" => {
                tokio::spawn(async { panic!("TICKMUX_DEBUG_PANIC=task: test panic in a task") });
            }
            _ => {}
        });
    }

    #[cfg(not(debug_assertions))]
    pub fn after_first_frame() {}
}

/// `Some(true)` when the proxy's stats changed, `Some(false)` when it went away; pending
/// forever without a proxy.
async fn proxy_changed(rx: Option<&mut watch::Receiver<ProxyStats>>) -> Option<bool> {
    match rx {
        Some(rx) => Some(rx.changed().await.is_ok()),
        None => std::future::pending().await,
    }
}

/// One frame on the real terminal, inside a synchronized update (no tearing over slow links).
fn draw(term: &mut Tui, app: &mut App, engine: &EngineHandle, now: Instant) -> anyhow::Result<()> {
    use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
    let size = term.size().context("reading the terminal size")?;
    let area = Rect::new(0, 0, size.width, size.height);
    crossterm::queue!(term.backend_mut(), BeginSynchronizedUpdate)?;
    render_frame(term, app, engine.book(), area, now).context("drawing the screen")?;
    crossterm::execute!(term.backend_mut(), EndSynchronizedUpdate)?;
    Ok(())
}

/// The work of one frame, on any backend (the bench uses it too): the viewport from `area`,
/// then the visible rows from the book (one short read lock), then one draw.
pub fn render_frame<B: Backend>(
    term: &mut Terminal<B>,
    app: &mut App,
    book: &QuoteBook,
    area: Rect,
    now: Instant,
) -> Result<(), B::Error> {
    app.set_viewport(view::table_rows(area));
    app.refresh(book, now);
    term.draw(|f| view::draw(f, app))?;
    Ok(())
}

/// The signals that end the TUI: SIGTERM, SIGHUP (ssh dropped), SIGQUIT, and SIGINT sent from
/// outside (in raw mode Ctrl+C arrives as a key, handled by the app).
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let on =
            |k: SignalKind, name: &str| signal(k).with_context(|| format!("listening for {name}"));
        Ok(Signals {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
            quit: on(SignalKind::quit(), "SIGQUIT")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
            _ = self.quit.recv() => "SIGQUIT",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Off Unix only Ctrl+C can stop us from outside.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl+C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_zone_is_reported_only_away_from_ist() {
        let none = || None;
        assert_eq!(host_zone_from(None, IST_OFFSET, none), None);
        assert_eq!(host_zone_from(Some("Asia/Kolkata"), IST_OFFSET, none), None);
        assert_eq!(
            host_zone_from(Some(":Asia/Calcutta"), IST_OFFSET, none),
            None
        );
        assert_eq!(host_zone_from(None, 0, none).as_deref(), Some("UTC+00:00"));
        assert_eq!(
            host_zone_from(None, -(4 * 3600 + 30 * 60), none).as_deref(),
            Some("UTC-04:30")
        );
        assert_eq!(
            host_zone_from(None, 3600, || Some("Europe/Paris".into())).as_deref(),
            Some("Europe/Paris")
        );
        // TZ names another zone: reported even if today's offset happens to match.
        assert_eq!(
            host_zone_from(Some("Asia/Colombo"), IST_OFFSET, none).as_deref(),
            Some("Asia/Colombo")
        );
    }
}

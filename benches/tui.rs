//! TUI benchmarks (a bench command that prints figures; not a timed test):
//!   cargo bench --bench tui            # CPU at 10 k ticks/s + draw time per frame
//!   cargo bench --bench tui -- cpu     # process CPU only
//!   cargo bench --bench tui -- draw    # draw time only
//!
//! CPU: 500 instruments subscribed in quote mode, the simulator (a separate `tickmux sim`
//! process, so its CPU is not counted) at 10 000 ticks/s; the same engine + consumer once
//! without the UI (baseline) and once with the UI loop at 20 fps (health, events, clock, and
//! per frame: refresh from the book + draw at 120x40 on a crossterm backend writing to
//! /dev/null, so escape-sequence encoding is included). Figures are process CPU from
//! /proc/self/stat. Draw: mean and p99 of one frame's refresh + draw, on TestBackend and on
//! the /dev/null crossterm backend.

#[path = "support/mod.rs"]
mod support;

use hdrhistogram::Histogram;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend, TestBackend};
use ratatui::layout::Rect;
use ratatui::{TerminalOptions, Viewport};
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Duration;
use support::{SimProc, cpu_secs, start_sim};
use tickmux::adapters::Endpoints;
use tickmux::adapters::kite::Kite;
use tickmux::engine::{self, EngineConfig, EngineHandle, EngineState};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::Mode;
use tickmux::tui::app::{App, AppInit, Cmd, WatchItem};
use tickmux::tui::keymap::Keymap;
use tickmux::tui::runtime::render_frame;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

const INSTRUMENTS: usize = 500;
const TICK_RATE: u32 = 10_000;
const FPS: u32 = 20;
const SECS: u64 = 10;
const AREA: Rect = Rect::new(0, 0, 120, 40);

fn master() -> Arc<InstrumentMaster> {
    Arc::new(InstrumentMaster::new(tickmux::sim::synthetic_instruments(
        INSTRUMENTS,
    )))
}

fn app() -> (App, Vec<Cmd>) {
    let watchlist = tickmux::sim::synthetic_instruments(INSTRUMENTS)
        .into_iter()
        .map(|i| WatchItem {
            symbol: i.display_name(),
            mode: Mode::Quote,
        })
        .collect();
    App::new(AppInit {
        source: "simulator (bench)".into(),
        simulator: true,
        master: master(),
        keymap: Keymap::default(),
        keymap_errors: Vec::new(),
        watchlist,
        mono: false,
        host_tz: None,
    })
}

fn dev_null_terminal() -> Terminal<CrosstermBackend<BufWriter<std::fs::File>>> {
    let out = BufWriter::with_capacity(64 * 1024, std::fs::File::create("/dev/null").unwrap());
    Terminal::with_options(
        CrosstermBackend::new(out),
        TerminalOptions {
            viewport: Viewport::Fixed(AREA),
        },
    )
    .unwrap()
}

async fn engine_on(sim: &SimProc) -> EngineHandle {
    let cfg = EngineConfig::new(Endpoints {
        ws_url: sim.ws_url.clone(),
        rest_url: sim.rest_url.clone(),
        instruments_url: None,
    });
    engine::spawn(Arc::new(Kite), sim.creds.clone(), cfg, true)
}

/// Subscribe the app's initial commands, wait for live ticks on every instrument.
async fn subscribe(e: &EngineHandle, cmds: Vec<Cmd>) -> engine::Consumer {
    let c = e.consumer().await.unwrap();
    for cmd in cmds {
        if let Cmd::Subscribe(list, mode) = cmd {
            c.subscribe(list, mode).await.unwrap();
        }
    }
    let mut h = e.health();
    tokio::time::timeout(
        Duration::from_secs(20),
        h.wait_for(|h| h.state == EngineState::Live),
    )
    .await
    .expect("live")
    .unwrap();
    // Let the book fill so every visible row has a price.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.book().len() < INSTRUMENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c
}

/// CPU share of one core over `SECS`, with or without the UI loop.
async fn cpu_run(with_ui: bool) -> (f64, f64, u64) {
    let sim = start_sim(TICK_RATE);
    let e = engine_on(&sim).await;
    let (mut app, cmds) = app();
    let consumer = subscribe(&e, cmds).await;
    let mut term = dev_null_terminal();
    let mut health = e.health();
    let mut events = e.events();
    let ticks0 = health.borrow().ticks_total;
    let (wall0, cpu0) = (Instant::now(), cpu_secs());
    let end = wall0 + Duration::from_secs(SECS);
    let mut frames = 0u64;
    if with_ui {
        // The runtime's loop without the terminal input: the same frame work at the same rate.
        let mut frame = tokio::time::interval(Duration::from_secs(1) / FPS);
        frame.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        clock.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let stop = tokio::time::sleep_until(end);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                r = health.changed() => {
                    r.unwrap();
                    app.on_health(health.borrow_and_update().clone());
                }
                ev = events.recv() => match ev {
                    Ok(ev) => app.on_event(ev),
                    Err(RecvError::Lagged(n)) => app.on_events_lagged(n),
                    Err(RecvError::Closed) => break,
                },
                _ = clock.tick() => app.set_clock(chrono::Utc::now()),
                _ = frame.tick() => {
                    render_frame(&mut term, &mut app, e.book(), AREA, Instant::now()).unwrap();
                    frames += 1;
                }
            }
        }
    } else {
        tokio::time::sleep_until(end).await;
    }
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), cpu_secs() - cpu0);
    let ticks = e.health().borrow().ticks_total - ticks0;
    drop(consumer);
    e.shutdown().await;
    (100.0 * cpu / wall, ticks as f64 / wall, frames)
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:<34} mean {:>7.1} µs   p50 {:>6} µs   p99 {:>6} µs   max {:>6} µs   ({} frames)",
        h.mean() / 1000.0,
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.max() / 1000,
        h.len()
    );
}

/// Time `n` frames (refresh + draw) on a backend while ticks keep arriving.
async fn time_frames<B: Backend>(
    term: &mut Terminal<B>,
    app: &mut App,
    e: &EngineHandle,
    n: usize,
) -> Histogram<u64>
where
    B::Error: std::fmt::Debug,
{
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 0..n {
        // Real ticks land between frames (every 5th frame waits a little, like 20 fps would).
        if i % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let t = std::time::Instant::now();
        render_frame(term, app, e.book(), AREA, Instant::now()).unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    h
}

async fn draw_times() {
    let sim = start_sim(TICK_RATE);
    let e = engine_on(&sim).await;
    let (mut app, cmds) = app();
    let consumer = subscribe(&e, cmds).await;
    app.on_health(e.health().borrow().clone());
    app.set_clock(chrono::Utc::now());
    let n = 2000;
    println!("draw: one frame (set_viewport + refresh from the book + draw) at 120x40, full table");
    let mut test = Terminal::new(TestBackend::new(AREA.width, AREA.height)).unwrap();
    let _ = time_frames(&mut test, &mut app, &e, 200).await; // warm-up
    report(
        "TestBackend",
        &time_frames(&mut test, &mut app, &e, n).await,
    );
    let mut null = dev_null_terminal();
    let _ = time_frames(&mut null, &mut app, &e, 200).await;
    report(
        "crossterm -> /dev/null",
        &time_frames(&mut null, &mut app, &e, n).await,
    );
    drop(consumer);
    e.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if want("cpu") {
            println!(
                "cpu: {INSTRUMENTS} instruments (quote mode), simulator at {TICK_RATE} ticks/s \
                 in a child process, {SECS} s per run, {FPS} fps, 120x40"
            );
            let (base, base_tps, _) = cpu_run(false).await;
            println!(
                "  baseline (engine + consumer, no UI)  {base:>5.2} % of a core   ({base_tps:.0} ticks/s received)"
            );
            let (ui, ui_tps, frames) = cpu_run(true).await;
            println!(
                "  with the UI loop                     {ui:>5.2} % of a core   ({ui_tps:.0} ticks/s received, {frames} frames)"
            );
            println!(
                "  UI share                             {:>5.2} % of a core   (target: whole process <= 5 %)",
                ui - base
            );
        }
        if want("draw") {
            draw_times().await;
        }
    });
}

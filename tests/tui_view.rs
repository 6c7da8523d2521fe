//! TUI rendering: insta snapshots of whole screens (TestBackend) for each engine state, the
//! popups and the empty and narrow layouts; style assertions on buffer cells (snapshots do
//! not show styles); no panics at any size.
//!
//! Everything is deterministic: a fixed UTC clock, a book filled at a known `Instant` and
//! refreshed with a `now` derived from it, so no wall-clock time reaches the screen.

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use std::sync::Arc;
use std::time::Duration;
use tickmux::adapters::ErrorKind;
use tickmux::engine::EngineEvent;
use tickmux::engine::book::QuoteBook;
use tickmux::engine::health::{
    BackoffInfo, EngineState, Health, LastError, QualityLabel, TransportMode,
};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::{Depth, FeedKey, Instrument, Level, Mode, Ohlc, Price, Quote, Tick};
use tickmux::tui::action::Action;
use tickmux::tui::app::{App, AppInit, WatchItem};
use tickmux::tui::keymap::Keymap;
use tickmux::tui::view;
use tokio::time::Instant;

/// 2025-01-06 (a Monday) 09:45:30 IST.
fn clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 6, 4, 15, 30).unwrap()
}

fn ms(c: DateTime<Utc>) -> i64 {
    c.timestamp_millis()
}

/// (exchange, symbol, token, previous close, mode)
const INSTRUMENTS: &[(&str, &str, u32, f64, Mode)] = &[
    ("NSE", "INFY", 408065, 1510.10, Mode::Depth),
    ("NSE", "TCS", 2953217, 4102.55, Mode::Quote),
    ("NSE", "RELIANCE", 738561, 1250.00, Mode::Quote),
    ("NSE", "HDFCBANK", 341249, 1788.40, Mode::Quote),
    ("NSE", "NIFTY 50", 256265, 23616.05, Mode::Ltp),
    ("NSE", "NIFTY BANK", 260105, 50988.80, Mode::Quote),
    ("CDS", "USDINR25JANFUT", 412675, 85.8125, Mode::Quote),
];

fn master() -> Arc<InstrumentMaster> {
    Arc::new(InstrumentMaster::new(
        INSTRUMENTS
            .iter()
            .map(|&(ex, sym, tok, _, _)| Instrument {
                exchange: ex.into(),
                symbol: sym.into(),
                key: FeedKey::kite(tok),
            })
            .collect(),
    ))
}

fn watchlist() -> Vec<WatchItem> {
    INSTRUMENTS
        .iter()
        .map(|&(ex, sym, _, _, mode)| WatchItem {
            symbol: format!("{ex}:{sym}"),
            mode,
        })
        .collect()
}

fn init(simulator: bool, mono: bool, host_tz: Option<&str>, list: Vec<WatchItem>) -> AppInit {
    AppInit {
        source: if simulator {
            "built-in simulator".into()
        } else {
            "kite (account AB1234)".into()
        },
        simulator,
        master: master(),
        keymap: Keymap::default(),
        keymap_errors: Vec::new(),
        watchlist: list,
        mono,
        host_tz: host_tz.map(String::from),
    }
}

/// A tick for instrument `i` at `ltp` (percent change from its close).
fn tick(i: usize, ltp: f64) -> Tick {
    let (_, _, tok, close, mode) = INSTRUMENTS[i];
    let key = FeedKey::kite(tok);
    let p = Price::from_f64;
    let step = if close < 100.0 { 0.0025 } else { 0.05 };
    let q = Quote {
        volume: 1_234_567 * (i as u64 + 1),
        average_price: p(ltp),
        last_quantity: 10,
        total_buy_quantity: 81_250 + 1000 * i as u64,
        total_sell_quantity: 96_400 - 700 * i as u64,
        ohlc: Ohlc {
            open: p(close * 1.001),
            high: p(close * 1.012),
            low: p(close * 0.991),
            close: p(close),
        },
        change: (ltp - close) * 100.0 / close,
        oi: 0,
        ..Default::default()
    };
    let level = |k: u32, side: f64| Level {
        price: p(ltp + side * step * f64::from(k + 1)),
        quantity: 100 * u64::from(k + 1) + 25,
        orders: k + 1,
    };
    let depth = Depth {
        buy: std::array::from_fn(|k| level(k as u32, -1.0)),
        sell: std::array::from_fn(|k| level(k as u32, 1.0)),
    };
    Tick {
        key,
        mode,
        tradable: i != 4 && i != 5,
        ltp: p(ltp),
        quote: (mode >= Mode::Quote).then_some(q),
        depth: (mode == Mode::Depth).then_some(depth),
    }
}

/// LTPs: first and second pass (the second sets each row's direction).
const LTP1: [f64; 7] = [
    1520.00, 4090.00, 1250.00, 1800.10, 23700.55, 50900.00, 85.8200,
];
const LTP2: [f64; 7] = [
    1523.45, 4085.15, 1250.00, 1799.00, 23712.30, 50890.25, 85.8350,
];

/// An app with the fixture book applied at a known instant and refreshed at `t0 + 300 ms`.
/// `old` rows were last updated 25 s before the others.
fn app_with(init: AppInit, h: Health, old: &[usize]) -> (App, Instant) {
    let (mut app, _) = App::new(init);
    app.set_clock(clock());
    app.on_health(h);
    let book = QuoteBook::default();
    let t0 = Instant::now();
    let t_old = t0 - Duration::from_secs(25);
    for (i, l) in LTP1.iter().enumerate() {
        book.apply(&[tick(i, *l)], if old.contains(&i) { t_old } else { t0 });
    }
    app.set_viewport(40);
    app.refresh(&book, t0);
    for (i, l) in LTP2.iter().enumerate() {
        if !old.contains(&i) {
            book.apply(&[tick(i, *l)], t0);
        }
    }
    let now = t0 + Duration::from_millis(300);
    app.refresh(&book, now);
    (app, now)
}

fn ev(at: i64, kind: &'static str, text: &str) -> EngineEvent {
    EngineEvent {
        at_unix_ms: at,
        kind,
        text: text.into(),
    }
}

fn health(state: EngineState) -> Health {
    let c = ms(clock());
    let mut h = Health {
        broker: "kite".into(),
        account: "AB1234".into(),
        state,
        transport: TransportMode::Websocket,
        quality_pct: 99.4,
        quality: QualityLabel::Excellent,
        last_tick_age_ms: Some(120),
        ticks_per_sec: 42.5,
        backoff: None,
        reconnects: 1,
        last_error: None,
        desired: 7,
        applied: 7,
        consumers: 1,
        upstream_connections: 1,
        market_open: true,
        ticks_total: 123_456,
        malformed_frames: 0,
        skipped_packets: 0,
        stale_events: 0,
        stream_drops: 0,
        epoch: 2,
    };
    match state {
        EngineState::Stale => {
            h.quality_pct = 81.0;
            h.quality = QualityLabel::Degraded;
            h.last_tick_age_ms = Some(12_400);
            h.ticks_per_sec = 0.0;
            h.stale_events = 1;
            h.last_error = Some(LastError {
                kind: ErrorKind::DataStale,
                text: "no tick for any subscribed instrument for 10 s".into(),
                at_unix_ms: c - 2400,
            });
        }
        EngineState::Backoff => {
            h.quality_pct = 62.0;
            h.quality = QualityLabel::Poor;
            h.last_tick_age_ms = Some(31_000);
            h.ticks_per_sec = 0.0;
            h.reconnects = 3;
            h.applied = 0;
            h.upstream_connections = 0;
            h.backoff = Some(BackoffInfo {
                attempt: 3,
                max: 10,
                delay_ms: 4000,
                next_in_ms: 4200,
                next_at_unix_ms: c + 4200,
            });
            h.last_error = Some(LastError {
                kind: ErrorKind::Connect,
                text: "connection refused".into(),
                at_unix_ms: c - 800,
            });
        }
        EngineState::TokenInvalid => {
            h.quality_pct = 40.0;
            h.quality = QualityLabel::Poor;
            h.last_tick_age_ms = Some(95_000);
            h.ticks_per_sec = 0.0;
            h.applied = 0;
            h.upstream_connections = 0;
            h.last_error = Some(LastError {
                kind: ErrorKind::Auth,
                text: "HTTP 403 TokenException: Incorrect `api_key` or `access_token`. \
                       Write a new token to the token file."
                    .into(),
                at_unix_ms: c - 60_000,
            });
        }
        EngineState::FallbackRest => {
            h.transport = TransportMode::RestPolling;
            h.quality_pct = 74.0;
            h.quality = QualityLabel::Degraded;
            h.last_tick_age_ms = Some(1_800);
            h.ticks_per_sec = 3.5;
            h.reconnects = 10;
        }
        EngineState::Closed => {
            h.market_open = false;
            h.quality_pct = 100.0;
            h.last_tick_age_ms = None;
            h.ticks_per_sec = 0.0;
            h.applied = 0;
            h.upstream_connections = 0;
        }
        _ => {}
    }
    h
}

fn events_for(app: &mut App, state: EngineState) {
    let c = ms(clock());
    let mut log = |at: i64, kind: &'static str, text: &str| app.on_event(ev(c - at, kind, text));
    log(70_000, "connected", "connected (connection #2)");
    log(69_800, "resubscribed", "re-subscribed 7 instruments");
    match state {
        EngineState::Stale => log(
            2400,
            "stale",
            "stale: no tick for 10.0 s; re-subscribing 7 instruments",
        ),
        EngineState::Backoff => {
            log(9000, "disconnected", "closed: connection reset by peer");
            log(800, "connect_failed", "connect: connection refused");
        }
        EngineState::TokenInvalid => log(
            60_000,
            "token_invalid",
            "HTTP 403 TokenException — waiting for a new token (no retries with this one)",
        ),
        EngineState::FallbackRest => log(
            5000,
            "fallback",
            "10 attempts failed; polling REST every 2 s",
        ),
        _ => log(1000, "live", "first tick on connection #2: live"),
    }
}

/// The buffer as text, one line per row, trailing blanks trimmed.
fn text(buf: &Buffer) -> String {
    let w = buf.area.width as usize;
    let mut out = String::new();
    for row in buf.content().chunks(w.max(1)) {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render(app: &mut App, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.set_viewport(view::table_rows(Rect::new(0, 0, w, h)));
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().buffer().clone()
}

fn state_app(state: EngineState) -> App {
    state_app_at(state).0
}

/// The app for a state and the `now` of its last refresh.
fn state_app_at(state: EngineState) -> (App, Instant) {
    let closed = state == EngineState::Closed;
    let sim = matches!(state, EngineState::Live | EngineState::Stale);
    let (mut app, now) = app_with(
        init(
            sim,
            false,
            (state == EngineState::Live).then_some("UTC"),
            watchlist(),
        ),
        health(state),
        if state == EngineState::Live {
            &[3]
        } else {
            &[]
        },
    );
    if closed {
        app.set_clock(Utc.with_ymd_and_hms(2025, 1, 6, 11, 0, 0).unwrap());
    }
    events_for(&mut app, state);
    (app, now)
}

macro_rules! state_snapshots {
    ($($name:ident => $state:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            for (w, h) in [(80u16, 24u16), (120, 40)] {
                let mut app = state_app($state);
                let buf = render(&mut app, w, h);
                insta::assert_snapshot!(
                    format!("{}_{w}x{h}", stringify!($name)),
                    text(&buf)
                );
            }
        }
    )*};
}

state_snapshots! {
    state_live => EngineState::Live,
    state_stale => EngineState::Stale,
    state_backoff => EngineState::Backoff,
    state_token_invalid => EngineState::TokenInvalid,
    state_fallback_rest => EngineState::FallbackRest,
    state_closed => EngineState::Closed,
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

#[test]
fn quote_and_depth_tabs() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let mut app = state_app(EngineState::Live);
        app.on_key(key('2'));
        insta::assert_snapshot!(format!("tab_quote_{w}x{h}"), text(&render(&mut app, w, h)));
        app.on_key(key('3'));
        insta::assert_snapshot!(format!("tab_depth_{w}x{h}"), text(&render(&mut app, w, h)));
    }
}

#[test]
fn help_popup() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let mut app = state_app(EngineState::Live);
        app.update(Action::Help);
        insta::assert_snapshot!(format!("help_{w}x{h}"), text(&render(&mut app, w, h)));
    }
}

#[test]
fn subscribe_prompt_with_error() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let mut app = state_app(EngineState::Live);
        app.update(Action::Subscribe);
        for c in "NSE:INFY, NSE:NOPE".chars() {
            app.on_key(key(c));
        }
        app.update(Action::Confirm);
        insta::assert_snapshot!(
            format!("prompt_error_{w}x{h}"),
            text(&render(&mut app, w, h))
        );
    }
}

#[test]
fn fault_menu_and_confirm_bar() {
    let mut app = state_app(EngineState::Live);
    app.update(Action::FaultMenu);
    insta::assert_snapshot!("fault_menu_80x24", text(&render(&mut app, 80, 24)));
    app.update(Action::Cancel);
    app.update(Action::UnsubscribeAll);
    insta::assert_snapshot!(
        "confirm_unsubscribe_all_80x24",
        text(&render(&mut app, 80, 24))
    );
}

#[test]
fn empty_watchlist() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let (mut app, cmds) = App::new(init(true, false, None, Vec::new()));
        assert!(cmds.is_empty());
        app.set_clock(clock());
        let mut hl = health(EngineState::Idle);
        hl.desired = 0;
        hl.applied = 0;
        hl.upstream_connections = 0;
        app.on_health(hl);
        insta::assert_snapshot!(format!("empty_{w}x{h}"), text(&render(&mut app, w, h)));
    }
}

#[test]
fn narrow_folds_health_into_a_status_line() {
    let mut app = state_app(EngineState::Backoff);
    let buf = render(&mut app, 60, 20);
    let t = text(&buf);
    assert!(!t.contains("Health"), "{t}");
    assert!(t.contains("BACKOFF"), "{t}");
    insta::assert_snapshot!("narrow_backoff_60x20", t);
}

#[test]
fn paused_and_filtered_header() {
    let mut app = state_app(EngineState::Live);
    app.update(Action::Pause);
    app.update(Action::Filter);
    for c in "nifty".chars() {
        app.on_key(key(c));
    }
    insta::assert_snapshot!("paused_filter_80x24", text(&render(&mut app, 80, 24)));
}

// ---- styles ----

/// Cell at the first occurrence of `needle` on the row that contains `row_has`.
fn find(buf: &Buffer, row_has: &str, needle: &str) -> (u16, u16) {
    let t = text(buf);
    for (y, line) in t.lines().enumerate() {
        if line.contains(row_has)
            && let Some(byte) = line.find(needle)
        {
            let x = line[..byte].chars().count();
            return (x as u16, y as u16);
        }
    }
    panic!("{needle:?} not found on a row with {row_has:?}:\n{t}");
}

#[test]
fn up_and_down_moves_are_coloured_and_marked() {
    let (mut app, now) = state_app_at(EngineState::Live);
    let buf = render(&mut app, 120, 40);
    // INFY: above its close (green ▲ +) and its last tick was up (LTP flashes green).
    let (x, y) = find(&buf, "NSE:INFY", "▲ +");
    assert_eq!(buf[(x, y)].fg, Color::Green);
    let (x, y) = find(&buf, "NSE:INFY", "1523.45");
    assert_eq!(buf[(x, y)].bg, Color::Green, "a fresh up tick flashes");
    // TCS: below its close (red ▼ -), last tick down.
    let (x, y) = find(&buf, "NSE:TCS", "▼ -");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    let (x, y) = find(&buf, "NSE:TCS", "4085.15");
    assert_eq!(buf[(x, y)].bg, Color::Red);
    // After the flash the direction stays as the LTP's colour.
    app.refresh(&QuoteBook::default(), now + Duration::from_secs(2));
    let buf = render(&mut app, 120, 40);
    let (x, y) = find(&buf, "NSE:INFY", "1523.45");
    // (INFY is the selected row: the selection's background, not the flash.)
    assert_eq!(
        (buf[(x, y)].fg, buf[(x, y)].bg),
        (Color::Green, Color::DarkGray)
    );
    let (x, y) = find(&buf, "NSE:TCS", "4085.15");
    assert_eq!((buf[(x, y)].fg, buf[(x, y)].bg), (Color::Red, Color::Reset));
}

#[test]
fn stale_rows_are_dimmed_and_tagged() {
    // HDFCBANK was last updated 25 s ago on a live feed.
    let mut app = state_app(EngineState::Live);
    let buf = render(&mut app, 120, 40);
    let (x, y) = find(&buf, "NSE:HDFCBANK", "HDFCBANK");
    assert!(buf[(x, y)].modifier.contains(Modifier::DIM));
    let (x, y) = find(&buf, "NSE:HDFCBANK", "1800.10");
    assert!(buf[(x, y)].modifier.contains(Modifier::DIM));
    assert_ne!(
        buf[(x, y)].fg,
        Color::Green,
        "a stale price never looks live"
    );
    assert_ne!(buf[(x, y)].fg, Color::Red);
    find(&buf, "NSE:HDFCBANK", "stale 25s");
    // A feed that is not live marks every row, fresh or not.
    let mut app = state_app(EngineState::Backoff);
    let buf = render(&mut app, 120, 40);
    let (x, y) = find(&buf, "NSE:INFY", "1523.45");
    assert!(buf[(x, y)].modifier.contains(Modifier::DIM));
    assert_ne!(buf[(x, y)].fg, Color::Green);
    find(&buf, "NSE:INFY", "stale");
}

#[test]
fn mono_theme_has_no_colour_but_keeps_arrows_and_reverse_selection() {
    let (mut app, _) = App::new(init(true, true, Some("UTC"), watchlist()));
    app.set_clock(clock());
    app.on_health(health(EngineState::Live));
    let book = QuoteBook::default();
    let t0 = Instant::now();
    for (i, l) in LTP1.iter().enumerate() {
        book.apply(&[tick(i, *l)], t0);
    }
    app.refresh(&book, t0);
    for (i, l) in LTP2.iter().enumerate() {
        book.apply(&[tick(i, *l)], t0);
    }
    app.refresh(&book, t0 + Duration::from_millis(100));
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let buf = render(&mut app, w, h);
        for c in buf.content() {
            assert_eq!(c.fg, Color::Reset, "{c:?}");
            assert_eq!(c.bg, Color::Reset, "{c:?}");
        }
        let t = text(&buf);
        assert!(t.contains('▲') && t.contains('▼'), "{t}");
        // The first row is selected: reverse video.
        let (x, y) = find(&buf, "NSE:INFY", "NSE:INFY");
        assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
        let (x, y) = find(&buf, "NSE:TCS", "NSE:TCS");
        assert!(!buf[(x, y)].modifier.contains(Modifier::REVERSED));
    }
    // Popups too.
    app.update(Action::Help);
    let buf = render(&mut app, 80, 24);
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
}

#[test]
fn colour_theme_selection_is_visible() {
    let mut app = state_app(EngineState::Live);
    let buf = render(&mut app, 80, 24);
    let (x, y) = find(&buf, "NSE:INFY", "NSE:INFY");
    assert_ne!(buf[(x, y)].bg, Color::Reset);
    let (x, y) = find(&buf, "NSE:TCS", "NSE:TCS");
    assert_eq!(buf[(x, y)].bg, Color::Reset);
}

#[test]
fn state_word_is_text_and_colour() {
    for (state, word, colour) in [
        (EngineState::Live, "● LIVE", Color::Green),
        (EngineState::Stale, "● STALE", Color::Yellow),
        (EngineState::Backoff, "● BACKOFF", Color::Yellow),
        (EngineState::TokenInvalid, "● TOKEN INVALID", Color::Red),
    ] {
        let mut app = state_app(state);
        let buf = render(&mut app, 80, 24);
        let (x, y) = find(&buf, word, word);
        assert_eq!(buf[(x + 2, y)].fg, colour, "{word}");
    }
}

#[test]
fn no_panic_at_any_size() {
    for (w, h) in [
        (20u16, 5u16),
        (1, 1),
        (0, 0),
        (79, 24),
        (200, 60),
        (80, 3),
        (3, 80),
        (40, 10),
        (81, 7),
    ] {
        for setup in 0..7 {
            let mut app = state_app(EngineState::Backoff);
            match setup {
                1 => {
                    app.update(Action::Help);
                }
                2 => {
                    app.update(Action::Subscribe);
                    app.update(Action::Confirm);
                }
                3 => {
                    app.update(Action::FaultMenu);
                }
                4 => {
                    app.on_key(key('3'));
                }
                5 => {
                    app.update(Action::UnsubscribeAll);
                }
                6 => {
                    app.update(Action::Filter);
                    app.on_key(key('x'));
                }
                _ => {}
            }
            let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
            app.set_viewport(view::table_rows(Rect::new(0, 0, w, h)));
            term.draw(|f| view::draw(f, &app)).unwrap();
        }
    }
}

#[test]
fn table_rows_matches_the_drawn_table() {
    let mut app = state_app(EngineState::Live);
    // 80x24: 12 body rows; the watchlist (7) fits.
    assert_eq!(view::table_rows(Rect::new(0, 0, 80, 24)), 12);
    assert_eq!(view::table_rows(Rect::new(0, 0, 0, 0)), 0);
    // A short terminal shows only the window around the selection.
    let buf = render(&mut app, 80, 12);
    let t = text(&buf);
    assert!(t.contains("NSE:INFY"), "{t}");
    assert!(!t.contains("USDINR"), "{t}");
    app.update(Action::End);
    let buf = render(&mut app, 80, 12);
    let t = text(&buf);
    assert!(t.contains("USDINR"), "{t}");
}

#[test]
fn health_pane_lists_local_clients_and_their_subscriptions() {
    use tickmux::proxy::{ClientInfo, ProxyStats};
    use tickmux::tui::app::ProxyPane;
    let client = |id, authenticated, subscriptions, dropped| ClientInfo {
        id,
        peer: format!("127.0.0.1:{}", 50000 + id),
        authenticated,
        subscriptions,
        dropped,
    };
    let mut app = state_app(EngineState::Live);
    app.on_proxy(ProxyPane::On(ProxyStats {
        listen: "127.0.0.1:8765".into(),
        clients: vec![
            client(1, true, 12, 0),
            client(2, true, 3, 40),
            client(3, false, 0, 0),
        ],
        ..Default::default()
    }));
    let t = text(&render(&mut app, 120, 40));
    assert!(t.contains("clients    2 on :8765 (subs 12,"), "{t}");
    assert!(t.contains("3), 1 unauthenticated,"), "{t}");
    // Narrow: the status line counts them.
    let t = text(&render(&mut app, 79, 20));
    assert!(t.contains("clients 2"), "{t}");
    // Not running: the reason, never a silent absence.
    app.on_proxy(ProxyPane::Failed("port busy".into()));
    let t = text(&render(&mut app, 120, 40));
    assert!(t.contains("clients    off (port busy)"), "{t}");
}

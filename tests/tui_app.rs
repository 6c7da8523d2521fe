//! TUI state: key → action → engine command, per context; and the keymap table (every action
//! bound and documented, overrides, bad entries reported).

use chrono::{TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tickmux::engine::EngineEvent;
use tickmux::engine::book::QuoteBook;
use tickmux::instruments::InstrumentMaster;
use tickmux::model::{FeedKey, Instrument, Mode, Price, Quote, Tick};
use tickmux::sim::Fault;
use tickmux::tui::action::Action;
use tickmux::tui::app::{App, AppInit, Cmd, Confirming, EVENT_LOG_CAP, SortKey, Tab, WatchItem};
use tickmux::tui::keymap::{Context, Keymap, Target};
use tokio::time::Instant;

const SYMBOLS: &[(&str, u32)] = &[
    ("NSE:INFY", 408065),
    ("NSE:TCS", 2953217),
    ("NSE:RELIANCE", 738561),
    ("NSE:HDFCBANK", 341249),
    ("NSE:NIFTY 50", 256265),
    ("NSE:NIFTY BANK", 260105),
];

fn master() -> Arc<InstrumentMaster> {
    Arc::new(InstrumentMaster::new(
        SYMBOLS
            .iter()
            .map(|(s, t)| {
                let (ex, sym) = s.split_once(':').unwrap();
                Instrument {
                    exchange: ex.into(),
                    symbol: sym.into(),
                    key: FeedKey::kite(*t),
                }
            })
            .collect(),
    ))
}

fn items(list: &[(&str, Mode)]) -> Vec<WatchItem> {
    list.iter()
        .map(|(s, m)| WatchItem {
            symbol: s.to_string(),
            mode: *m,
        })
        .collect()
}

fn all_quote() -> Vec<WatchItem> {
    SYMBOLS
        .iter()
        .map(|(s, _)| WatchItem {
            symbol: s.to_string(),
            mode: Mode::Quote,
        })
        .collect()
}

fn init_with(
    simulator: bool,
    watchlist: Vec<WatchItem>,
    keymap: Keymap,
    errs: Vec<String>,
) -> AppInit {
    AppInit {
        source: if simulator {
            "built-in simulator".into()
        } else {
            "kite (account AB1234)".into()
        },
        simulator,
        master: master(),
        keymap,
        keymap_errors: errs,
        watchlist,
        mono: false,
        host_tz: None,
    }
}

fn app(simulator: bool, watchlist: Vec<WatchItem>) -> App {
    App::new(init_with(
        simulator,
        watchlist,
        Keymap::default(),
        Vec::new(),
    ))
    .0
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        assert!(app.on_key(key(c)).is_empty());
    }
}

fn saved(cmds: &[Cmd]) -> Vec<String> {
    match cmds.last() {
        Some(Cmd::SaveWatchlist(l)) => l.iter().map(|w| w.symbol.clone()).collect(),
        other => panic!("expected SaveWatchlist last, got {other:?}"),
    }
}

fn log_text(app: &App) -> Vec<String> {
    app.events()
        .map(|l| format!("{} {}", l.kind, l.text))
        .collect()
}

#[test]
fn start_resubscribes_the_saved_watchlist_by_mode_and_reports_unknowns() {
    let (app, cmds) = App::new(init_with(
        false,
        items(&[
            ("NSE:INFY", Mode::Depth),
            ("NSE:NOPE", Mode::Quote),
            ("nse:tcs", Mode::Quote),
            ("NSE:NIFTY 50", Mode::Ltp),
        ]),
        Keymap::default(),
        Vec::new(),
    ));
    let summary: Vec<(Vec<String>, Mode)> = cmds
        .iter()
        .map(|c| match c {
            Cmd::Subscribe(list, m) => (list.iter().map(|i| i.display_name()).collect(), *m),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (vec!["NSE:NIFTY 50".to_string()], Mode::Ltp),
            (vec!["NSE:TCS".to_string()], Mode::Quote),
            (vec!["NSE:INFY".to_string()], Mode::Depth),
        ]
    );
    assert_eq!(app.rows(), ["NSE:INFY", "NSE:TCS", "NSE:NIFTY 50"]);
    assert!(
        log_text(&app).iter().any(|l| l.contains("NSE:NOPE")),
        "{:?}",
        log_text(&app)
    );
}

#[test]
fn subscribe_prompt_good_input_subscribes_and_saves() {
    let mut app = app(false, Vec::new());
    assert!(app.on_key(key('a')).is_empty());
    assert_eq!(app.context(), Context::Prompt);
    type_text(&mut app, "NSE:INFY, nse:tcs");
    let cmds = app.on_key(code(KeyCode::Enter));
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    match &cmds[0] {
        Cmd::Subscribe(list, mode) => {
            let names: Vec<String> = list.iter().map(|i| i.display_name()).collect();
            assert_eq!(names, ["NSE:INFY", "NSE:TCS"]);
            assert_eq!(*mode, Mode::Quote);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(saved(&cmds), ["NSE:INFY", "NSE:TCS"]);
    assert_eq!(app.context(), Context::Normal);
    assert_eq!(app.rows(), ["NSE:INFY", "NSE:TCS"]);
}

#[test]
fn prompt_mode_by_word_or_tab_and_resubscribing_keeps_the_place() {
    let mut app = app(false, all_quote());
    app.on_key(key('+'));
    type_text(&mut app, "NSE:TCS depth");
    let cmds = app.on_key(code(KeyCode::Enter));
    assert!(matches!(&cmds[0], Cmd::Subscribe(l, Mode::Depth) if l.len() == 1));
    // Already listed: same place, new mode.
    assert_eq!(app.rows()[1], "NSE:TCS");
    assert_eq!(app.watchlist()[1].mode, Mode::Depth);
    assert_eq!(app.selected_symbol(), Some("NSE:TCS"));
    // Tab cycles the prompt's mode: quote → depth → ltp.
    app.on_key(key('a'));
    assert_eq!(app.prompt().mode, Mode::Quote);
    app.on_key(code(KeyCode::Tab));
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.prompt().mode, Mode::Ltp);
    type_text(&mut app, "NSE:INFY");
    let cmds = app.on_key(code(KeyCode::Enter));
    assert!(matches!(&cmds[0], Cmd::Subscribe(_, Mode::Ltp)));
}

#[test]
fn subscribe_prompt_bad_input_shows_the_error_and_subscribes_nothing() {
    let mut app = app(false, all_quote());
    app.update(Action::Subscribe);
    type_text(&mut app, "NSE:INFY, NSE:NOPE, INFY");
    let cmds = app.update(Action::Confirm);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(app.context(), Context::Prompt, "the prompt stays open");
    let err = app.prompt().error.clone().unwrap();
    assert!(err.contains("NSE:NOPE") && err.contains("INFY"), "{err}");
    assert_eq!(app.watchlist().len(), SYMBOLS.len());
    // Editing clears the error; an empty list is an error too.
    app.on_key(ctrl('u'));
    assert!(app.prompt().error.is_none());
    assert_eq!(app.prompt().text, "");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(app.prompt().error.is_some());
    // Backspace edits; Esc closes without a command.
    type_text(&mut app, "NSE:INFYX");
    app.on_key(code(KeyCode::Backspace));
    assert_eq!(app.prompt().text, "NSE:INFY");
    assert!(app.on_key(code(KeyCode::Esc)).is_empty());
    assert_eq!(app.context(), Context::Normal);
}

#[test]
fn unsubscribe_selected() {
    let mut app = app(false, all_quote());
    app.on_key(key('j'));
    assert_eq!(app.selected_symbol(), Some("NSE:TCS"));
    let cmds = app.on_key(key('d'));
    assert_eq!(cmds[0], Cmd::Unsubscribe(vec![FeedKey::kite(2953217)]));
    assert!(!saved(&cmds).contains(&"NSE:TCS".to_string()));
    assert_eq!(saved(&cmds).len(), SYMBOLS.len() - 1);
    // The next row takes the selection.
    assert_eq!(app.selected_symbol(), Some("NSE:RELIANCE"));
    // Delete works too; on an empty list nothing happens.
    let mut empty = self::app(false, Vec::new());
    assert!(empty.on_key(code(KeyCode::Delete)).is_empty());
}

#[test]
fn unsubscribe_all_needs_confirmation() {
    let mut app = app(false, all_quote());
    assert!(app.on_key(key('D')).is_empty());
    assert_eq!(app.confirming(), Some(Confirming::UnsubscribeAll));
    // Esc cancels, keys of other contexts do nothing meanwhile.
    assert!(app.on_key(key('d')).is_empty());
    assert!(app.on_key(code(KeyCode::Esc)).is_empty());
    assert_eq!(app.confirming(), None);
    assert_eq!(app.watchlist().len(), SYMBOLS.len());
    // n cancels too.
    app.on_key(key('D'));
    assert!(app.on_key(key('n')).is_empty());
    assert_eq!(app.watchlist().len(), SYMBOLS.len());
    // y confirms: unsubscribe-all (the session stays) and an empty saved list.
    app.on_key(KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT));
    let cmds = app.on_key(key('y'));
    assert_eq!(
        cmds,
        vec![Cmd::UnsubscribeAll, Cmd::SaveWatchlist(Vec::new())]
    );
    assert!(app.watchlist().is_empty());
    assert!(app.rows().is_empty());
    // Nothing left: no question asked.
    assert!(app.on_key(key('D')).is_empty());
    assert_eq!(app.confirming(), None);
}

#[test]
fn force_reconnect_needs_confirmation() {
    let mut app = app(false, all_quote());
    app.on_key(key('R'));
    assert_eq!(app.confirming(), Some(Confirming::ForceReconnect));
    assert!(app.on_key(key('n')).is_empty());
    app.on_key(key('R'));
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Cmd::ForceReconnect]);
    assert_eq!(app.context(), Context::Normal);
}

#[test]
fn mode_cycle_resubscribes_the_selected_instrument() {
    let mut app = app(
        false,
        items(&[("NSE:INFY", Mode::Ltp), ("NSE:TCS", Mode::Quote)]),
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let cmds = app.on_key(key('m'));
        match &cmds[0] {
            Cmd::Subscribe(l, m) => {
                assert_eq!(l.len(), 1);
                assert_eq!(l[0].display_name(), "NSE:INFY");
                seen.push(*m);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(saved(&cmds), ["NSE:INFY", "NSE:TCS"]);
    }
    assert_eq!(seen, [Mode::Quote, Mode::Depth, Mode::Ltp]);
    assert_eq!(app.watchlist()[1].mode, Mode::Quote, "others untouched");
}

#[test]
fn tabs() {
    let mut app = app(false, all_quote());
    assert_eq!(app.tab(), Tab::Ltp);
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.tab(), Tab::Quote);
    app.on_key(key('l'));
    assert_eq!(app.tab(), Tab::Depth);
    app.on_key(code(KeyCode::Right));
    assert_eq!(app.tab(), Tab::Ltp);
    app.on_key(code(KeyCode::BackTab));
    assert_eq!(app.tab(), Tab::Depth);
    app.on_key(key('h'));
    assert_eq!(app.tab(), Tab::Quote);
    app.on_key(key('1'));
    assert_eq!(app.tab(), Tab::Ltp);
    app.on_key(key('3'));
    assert_eq!(app.tab(), Tab::Depth);
    app.update(Action::PrevTab);
    assert_eq!(app.tab(), Tab::Quote);
}

#[test]
fn movement_with_bounds_pages_and_ends() {
    let mut app = app(false, all_quote());
    app.set_viewport(2);
    let sel = |a: &App| a.selection();
    app.on_key(key('k'));
    assert_eq!(sel(&app), (0, 0), "no move above the first row");
    app.on_key(code(KeyCode::Down));
    app.on_key(key('j'));
    assert_eq!(sel(&app), (2, 1), "the window follows the selection");
    app.on_key(code(KeyCode::PageDown));
    assert_eq!(sel(&app), (4, 3));
    app.on_key(code(KeyCode::PageDown));
    assert_eq!(sel(&app), (5, 4), "page down stops at the last row");
    app.on_key(key('j'));
    assert_eq!(sel(&app).0, 5);
    app.on_key(code(KeyCode::PageUp));
    assert_eq!(sel(&app), (3, 3));
    app.on_key(key('g'));
    assert_eq!(sel(&app), (0, 0));
    app.on_key(key('G'));
    assert_eq!(sel(&app), (5, 4));
    app.on_key(code(KeyCode::Home));
    assert_eq!(sel(&app).0, 0);
    app.on_key(code(KeyCode::End));
    assert_eq!(app.selected_symbol(), Some("NSE:NIFTY BANK"));
    app.on_key(code(KeyCode::Up));
    assert_eq!(app.selected_symbol(), Some("NSE:NIFTY 50"));
    // A bigger viewport pulls the window back.
    app.set_viewport(10);
    assert_eq!(sel(&app), (4, 0));
    // An empty list does not panic.
    let mut empty = self::app(false, Vec::new());
    for a in [
        Action::Up,
        Action::Down,
        Action::PageDown,
        Action::End,
        Action::Home,
    ] {
        empty.update(a);
    }
    assert_eq!(empty.selected_symbol(), None);
}

#[test]
fn filter_narrows_rows() {
    let mut app = app(false, all_quote());
    app.on_key(key('/'));
    assert_eq!(app.context(), Context::Filter);
    type_text(&mut app, "nifty");
    assert_eq!(
        app.rows(),
        ["NSE:NIFTY 50", "NSE:NIFTY BANK"],
        "narrows as you type"
    );
    // Keys that are bound in the normal context type text here.
    type_text(&mut app, " b");
    assert_eq!(app.rows(), ["NSE:NIFTY BANK"]);
    app.on_key(code(KeyCode::Backspace));
    app.on_key(code(KeyCode::Backspace));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.context(), Context::Normal);
    assert_eq!(app.filter(), "nifty");
    assert_eq!(app.rows().len(), 2);
    // Esc in the normal context clears it.
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.rows().len(), SYMBOLS.len());
    // Esc while typing clears it as well.
    app.on_key(key('/'));
    type_text(&mut app, "tcs");
    assert_eq!(app.rows(), ["NSE:TCS"]);
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.filter(), "");
    assert_eq!(app.rows().len(), SYMBOLS.len());
}

fn quote_tick(tok: u32, ltp: f64, change: f64, volume: u64) -> Tick {
    let mut t = Tick::ltp(FeedKey::kite(tok), Price::from_f64(ltp));
    t.mode = Mode::Quote;
    t.quote = Some(Quote {
        change,
        volume,
        ..Default::default()
    });
    t
}

fn book() -> QuoteBook {
    let b = QuoteBook::default();
    let ticks: Vec<Tick> = SYMBOLS
        .iter()
        .enumerate()
        .map(|(i, (_, tok))| {
            // Changes: 0: -1, 1: +2, 2: -3, ...; volumes rise with i.
            let sign = if i % 2 == 0 { -1.0 } else { 1.0 };
            quote_tick(
                *tok,
                100.0 + i as f64,
                sign * (i + 1) as f64,
                1000 * (i as u64 + 1),
            )
        })
        .collect();
    b.apply(&ticks, Instant::now());
    b
}

#[test]
fn sort_cycles_and_keeps_the_selection() {
    let mut app = app(false, all_quote());
    let b = book();
    app.refresh(&b, Instant::now());
    app.on_key(key('j')); // NSE:TCS
    app.on_key(key('s'));
    assert_eq!(app.sort(), SortKey::Symbol);
    assert_eq!(
        app.rows(),
        [
            "NSE:HDFCBANK",
            "NSE:INFY",
            "NSE:NIFTY 50",
            "NSE:NIFTY BANK",
            "NSE:RELIANCE",
            "NSE:TCS"
        ]
    );
    assert_eq!(app.selected_symbol(), Some("NSE:TCS"));
    app.on_key(key('s'));
    assert_eq!(app.sort(), SortKey::Change);
    app.refresh(&b, Instant::now());
    assert_eq!(
        app.rows(),
        [
            "NSE:NIFTY BANK",
            "NSE:HDFCBANK",
            "NSE:TCS",
            "NSE:INFY",
            "NSE:RELIANCE",
            "NSE:NIFTY 50"
        ]
    );
    app.on_key(key('s'));
    assert_eq!(app.sort(), SortKey::Volume);
    app.refresh(&b, Instant::now());
    assert_eq!(app.rows()[0], "NSE:NIFTY BANK");
    assert_eq!(app.rows()[5], "NSE:INFY");
    app.on_key(key('s'));
    assert_eq!(app.sort(), SortKey::Watchlist);
    assert_eq!(app.rows()[0], "NSE:INFY");
    // The saved list is never reordered by sorting.
    assert_eq!(app.watchlist()[0].symbol, "NSE:INFY");
}

#[test]
fn pause_stops_refresh_from_changing_rows() {
    let mut app = app(false, all_quote());
    let b = book();
    app.refresh(&b, Instant::now());
    let before = app.shown_tick("NSE:INFY").unwrap().ltp;
    app.on_key(key('p'));
    assert!(app.paused());
    b.apply(&[quote_tick(408065, 555.0, 1.0, 1)], Instant::now());
    app.refresh(&b, Instant::now());
    assert_eq!(app.shown_tick("NSE:INFY").unwrap().ltp, before);
    assert!(!app.needs_refresh());
    app.on_key(key(' '));
    assert!(!app.paused());
    assert!(app.needs_refresh());
    app.refresh(&b, Instant::now());
    assert_eq!(
        app.shown_tick("NSE:INFY").unwrap().ltp,
        Price::from_f64(555.0)
    );
}

#[test]
fn refresh_copies_only_visible_rows_and_the_selection() {
    let mut app = app(false, all_quote());
    app.set_viewport(2);
    let b = book();
    app.refresh(&b, Instant::now());
    assert!(app.shown_tick("NSE:INFY").is_some());
    assert!(app.shown_tick("NSE:TCS").is_some());
    assert!(
        app.shown_tick("NSE:RELIANCE").is_none(),
        "not visible: not copied"
    );
    app.on_key(key('G'));
    assert!(app.needs_refresh());
    app.refresh(&b, Instant::now());
    assert!(app.shown_tick("NSE:NIFTY BANK").is_some());
    assert!(!app.needs_refresh());
}

#[test]
fn fault_menu_only_on_the_simulator() {
    let mut kite = app(false, all_quote());
    assert!(kite.on_key(key('f')).is_empty());
    assert_eq!(kite.context(), Context::Normal);
    assert!(log_text(&kite).iter().any(|l| l.contains("simulator")));
    // Digits are tab keys in the normal context, never faults.
    assert!(kite.on_key(key('3')).is_empty());

    let mut sim = app(true, all_quote());
    sim.on_key(key('f'));
    assert_eq!(sim.context(), Context::FaultMenu);
    assert_eq!(
        sim.on_key(key('3')),
        vec![Cmd::InjectFault(
            Fault::Blackhole,
            Some(Duration::from_secs(10))
        )]
    );
    assert_eq!(sim.context(), Context::Normal);
    assert_eq!(
        sim.tab(),
        Tab::Ltp,
        "the digit went to the menu, not the tabs"
    );
    sim.on_key(key('f'));
    assert_eq!(
        sim.on_key(key('1')),
        vec![Cmd::InjectFault(Fault::Close { code: 1001 }, None)]
    );
    sim.on_key(key('f'));
    assert_eq!(sim.on_key(key('c')), vec![Cmd::ClearFaults]);
    sim.on_key(key('f'));
    assert!(sim.on_key(code(KeyCode::Esc)).is_empty());
    assert_eq!(sim.context(), Context::Normal);
    assert!(log_text(&sim).iter().any(|l| l.contains("blackhole")));
}

#[test]
fn quit_on_q_and_ctrl_c_everywhere() {
    let mut a = app(false, all_quote());
    assert_eq!(a.on_key(key('q')), vec![Cmd::Quit]);
    assert!(a.should_quit());

    let mut a = app(false, all_quote());
    a.on_key(key('a'));
    type_text(&mut a, "q");
    assert!(!a.should_quit(), "q types in the prompt");
    assert_eq!(a.prompt().text, "q");
    assert_eq!(a.on_key(ctrl('c')), vec![Cmd::Quit]);
    assert!(a.should_quit());

    let mut a = app(false, all_quote());
    a.update(Action::Help);
    assert_eq!(a.context(), Context::Help);
    assert_eq!(a.on_key(ctrl('c')), vec![Cmd::Quit]);
}

#[test]
fn help_toggles_and_closes() {
    let mut a = app(false, all_quote());
    a.on_key(key('?'));
    assert_eq!(a.context(), Context::Help);
    a.on_key(key('?'));
    assert_eq!(a.context(), Context::Normal);
    a.on_key(key('?'));
    a.on_key(key('q'));
    assert_eq!(
        a.context(),
        Context::Normal,
        "q closes the popup, it does not quit"
    );
    assert!(!a.should_quit());
    a.on_key(key('?'));
    a.on_key(code(KeyCode::Esc));
    assert_eq!(a.context(), Context::Normal);
}

#[test]
fn only_key_presses_count() {
    let mut a = app(false, all_quote());
    let mut k = key('q');
    k.kind = KeyEventKind::Release;
    assert!(a.on_key(k).is_empty());
    k.kind = KeyEventKind::Repeat;
    assert!(a.on_key(k).is_empty());
    assert!(!a.should_quit());
}

#[test]
fn event_log_is_bounded_and_reports_lag() {
    let mut a = app(false, Vec::new());
    for i in 0..(EVENT_LOG_CAP + 50) {
        a.on_event(EngineEvent {
            at_unix_ms: i as i64,
            kind: "reconnect",
            text: format!("n{i}"),
        });
    }
    assert_eq!(a.events().count(), EVENT_LOG_CAP);
    assert_eq!(
        a.events().last().unwrap().text,
        format!("n{}", EVENT_LOG_CAP + 49)
    );
    a.on_events_lagged(17);
    assert_eq!(a.events().last().unwrap().text, "17 events skipped");
}

#[test]
fn lines_logged_before_the_clock_get_its_time() {
    let (mut a, _) = App::new(init_with(
        false,
        Vec::new(),
        Keymap::default(),
        vec!["[keys] bogus: unknown action".into()],
    ));
    assert_eq!(a.events().next().unwrap().at_unix_ms, None);
    let t = Utc.with_ymd_and_hms(2025, 1, 6, 4, 15, 30).unwrap();
    a.set_clock(t);
    assert_eq!(
        a.events().next().unwrap().at_unix_ms,
        Some(t.timestamp_millis())
    );
}

// ---- keymap ----

#[test]
fn every_action_is_bound_and_documented() {
    let km = Keymap::default();
    let help = km.help_rows();
    for &a in Action::ALL {
        let b = km
            .bindings()
            .iter()
            .find(|b| b.target == Target::Action(a) && !b.chords.is_empty())
            .unwrap_or_else(|| panic!("{} is not bound", a.name()));
        assert!(!a.description().is_empty());
        let keys = Keymap::keys_text(b);
        assert!(
            help.iter()
                .any(|(k, d)| k.starts_with(&keys) && !d.is_empty()),
            "{} ({keys}) missing from help: {help:?}",
            a.name()
        );
    }
    // The footer comes from the same table.
    let footer = km.footer(Context::Normal);
    assert_eq!(footer[0], ("?".to_string(), "help"));
    assert!(footer.iter().any(|(k, l)| k == "q" && *l == "quit"));
    assert!(km.footer(Context::Confirm).iter().any(|(k, _)| k == "y"));
}

#[test]
fn default_chords_are_unique_per_context() {
    let km = Keymap::default();
    for &ctx in Context::ALL {
        let mut seen = std::collections::HashMap::new();
        for b in km.bindings().iter().filter(|b| b.contexts.contains(&ctx)) {
            for c in &b.chords {
                if let Some(prev) = seen.insert(*c, b.target) {
                    assert_eq!(prev, b.target, "{c} twice in {ctx:?}");
                }
            }
        }
    }
}

#[test]
fn overrides_rebind_by_action_name() {
    let mut o = BTreeMap::new();
    o.insert(
        "subscribe".to_string(),
        vec!["x".to_string(), "ctrl+n".to_string()],
    );
    o.insert("Force-Reconnect".to_string(), vec!["F5".to_string()]);
    let (km, errs) = Keymap::with_overrides(&o);
    assert!(errs.is_empty(), "{errs:?}");
    let mut a = App::new(init_with(false, all_quote(), km, errs)).0;
    assert!(a.on_key(key('a')).is_empty());
    assert_eq!(a.context(), Context::Normal, "a no longer subscribes");
    a.on_key(key('x'));
    assert_eq!(a.context(), Context::Prompt);
    a.on_key(code(KeyCode::Esc));
    a.on_key(ctrl('n'));
    assert_eq!(a.context(), Context::Prompt);
    a.on_key(code(KeyCode::Esc));
    a.on_key(code(KeyCode::F(5)));
    assert_eq!(a.confirming(), Some(Confirming::ForceReconnect));
    // Help shows the new keys.
    let (km, _) = Keymap::with_overrides(&o);
    assert!(
        km.help_rows()
            .iter()
            .any(|(k, d)| k == "x Ctrl+N" && *d == "subscribe (prompt)")
    );
}

#[test]
fn bad_overrides_are_reported_and_the_defaults_stay() {
    let mut o = BTreeMap::new();
    o.insert("teleport".to_string(), vec!["t".to_string()]);
    o.insert("sort".to_string(), vec!["hyper+s".to_string()]);
    o.insert("pause".to_string(), vec!["a".to_string()]); // taken by subscribe
    o.insert("filter".to_string(), Vec::new());
    o.insert(
        "quit".to_string(),
        vec!["ctrl+c".to_string(), "Q".to_string()],
    );
    let (km, errs) = Keymap::with_overrides(&o);
    let all = errs.join("\n");
    assert_eq!(errs.len(), 4, "{all}");
    assert!(
        all.contains("teleport") && all.contains("unknown action"),
        "{all}"
    );
    assert!(all.contains("sort") && all.contains("hyper"), "{all}");
    assert!(
        all.contains("pause") && all.contains("already bound to subscribe"),
        "{all}"
    );
    assert!(all.contains("filter") && all.contains("no keys"), "{all}");
    let ctx = Context::Normal;
    assert_eq!(km.lookup(ctx, &key('s')), Some(Action::Sort));
    assert_eq!(km.lookup(ctx, &key('p')), Some(Action::Pause));
    assert_eq!(km.lookup(ctx, &key('/')), Some(Action::Filter));
    assert_eq!(km.lookup(ctx, &key('q')), None, "quit moved to Q");
    assert_eq!(km.lookup(ctx, &key('Q')), Some(Action::Quit));
    assert_eq!(km.lookup(ctx, &ctrl('c')), Some(Action::Quit));
    // The app shows the problems in its event log (and keeps running).
    let a = App::new(init_with(false, Vec::new(), km, errs)).0;
    let log = log_text(&a);
    assert_eq!(
        log.iter().filter(|l| l.starts_with("keys ")).count(),
        4,
        "{log:?}"
    );
}

#[test]
fn swapping_two_keys_works() {
    let mut o = BTreeMap::new();
    o.insert("sort".to_string(), vec!["p".to_string()]);
    o.insert("pause".to_string(), vec!["s".to_string()]);
    let (km, errs) = Keymap::with_overrides(&o);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(km.lookup(Context::Normal, &key('p')), Some(Action::Sort));
    assert_eq!(km.lookup(Context::Normal, &key('s')), Some(Action::Pause));
    // Space was a second pause key; the override replaced both.
    assert_eq!(km.lookup(Context::Normal, &key(' ')), None);
}

#[test]
fn chords_parse_display_and_normalise() {
    use tickmux::tui::keymap::Chord;
    assert_eq!(Chord::parse("D").unwrap(), Chord::ch('D'));
    assert_eq!(Chord::parse("shift+d").unwrap(), Chord::ch('D'));
    assert_eq!(Chord::parse("Ctrl+C").unwrap(), Chord::ctrl('c'));
    assert_eq!(Chord::parse("+").unwrap(), Chord::ch('+'));
    assert_eq!(
        Chord::parse("ctrl++").unwrap(),
        Chord::new(KeyCode::Char('+'), KeyModifiers::CONTROL)
    );
    assert_eq!(
        Chord::parse("shift+tab").unwrap(),
        Chord::key(KeyCode::BackTab)
    );
    assert_eq!(Chord::parse("space").unwrap(), Chord::ch(' '));
    assert_eq!(Chord::parse("PgDn").unwrap(), Chord::key(KeyCode::PageDown));
    assert_eq!(Chord::parse("F5").unwrap(), Chord::key(KeyCode::F(5)));
    assert!(Chord::parse("hyper+x").is_err());
    assert!(Chord::parse("banana").is_err());
    assert!(Chord::parse("f99").is_err());
    assert!(Chord::parse("").is_err());
    for (c, shown) in [
        (Chord::ctrl('c'), "Ctrl+C"),
        (Chord::ch(' '), "Space"),
        (Chord::key(KeyCode::BackTab), "Shift+Tab"),
        (Chord::key(KeyCode::Up), "↑"),
        (Chord::ch('G'), "G"),
    ] {
        assert_eq!(c.to_string(), shown);
    }
    let ev = KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT);
    assert_eq!(Chord::from_event(&ev), Chord::ch('D'));
    let ev = KeyEvent::new(KeyCode::Tab, KeyModifiers::SHIFT);
    assert_eq!(Chord::from_event(&ev), Chord::key(KeyCode::BackTab));
}

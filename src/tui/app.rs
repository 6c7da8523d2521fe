//! UI state and its pure update function: keys → [`Action`]s → state changes and engine
//! commands ([`Cmd`]). No I/O, no terminal, no locks held: the runtime feeds keys, health,
//! events, the clock and book snapshots in, and sends the returned commands to the engine.
//!
//! Behaviour in brief (README material):
//! - The watchlist keeps the user's order; every subscribe / unsubscribe / mode change emits
//!   `SaveWatchlist` with the new list. A symbol added twice keeps its place and takes the new
//!   mode.
//! - The subscribe prompt takes `NSE:INFY, NSE:TCS` and optionally a mode word at the end
//!   (`NSE:INFY, NSE:TCS depth`); Tab cycles the prompt's mode. Every symbol must resolve or
//!   nothing is subscribed and the prompt shows why.
//! - Unsubscribe-all and force reconnect ask first (y/Enter = yes, n/Esc = no). Unsubscribe-all
//!   keeps the upstream session.
//! - `m` re-subscribes the selected instrument in the next mode (ltp → quote → depth → ltp).
//! - A row is stale when its last update is older than [`STALE_AFTER`] or the feed is not live;
//!   stale rows are dimmed and tagged, never shown as live.
//! - Pause freezes the table (refresh is a no-op); the engine keeps running.

pub mod faults;
mod input;
mod rows;

use super::keymap::{Context, Keymap};
use super::theme::Theme;
use crate::engine::EngineEvent;
use crate::engine::health::Health;
use crate::instruments::InstrumentMaster;
use crate::model::{FeedKey, Instrument, Mode, Tick};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Event-log lines kept.
pub const EVENT_LOG_CAP: usize = 200;
/// A row older than this is stale (the engine's data watchdog uses the same default).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How long a price change is highlighted.
pub const FLASH: Duration = Duration::from_millis(600);

/// One watchlist entry as saved in the data dir.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatchItem {
    /// `EXCHANGE:SYMBOL`.
    pub symbol: String,
    /// Subscription mode.
    pub mode: crate::model::Mode,
}

/// A command for the runtime / engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Subscribe these instruments in this mode (also used to change a mode).
    Subscribe(Vec<Arc<Instrument>>, Mode),
    /// Unsubscribe these instruments.
    Unsubscribe(Vec<FeedKey>),
    /// Unsubscribe everything; the upstream session stays.
    UnsubscribeAll,
    /// Drop and reopen the upstream connection now.
    ForceReconnect,
    /// Inject a simulator fault (for this long; `None` = one-shot).
    InjectFault(crate::sim::Fault, Option<Duration>),
    /// Clear all simulator faults.
    ClearFaults,
    /// Persist the watchlist (atomic write in the data dir).
    SaveWatchlist(Vec<WatchItem>),
    /// Leave the TUI.
    Quit,
}

/// What the runtime knows at start.
#[derive(Debug)]
pub struct AppInit {
    /// "built-in simulator" or "kite (account X)".
    pub source: String,
    /// True on the built-in simulator (enables the fault menu).
    pub simulator: bool,
    /// Resolves typed symbols.
    pub master: Arc<InstrumentMaster>,
    /// Key bindings (defaults plus `[keys]`).
    pub keymap: Keymap,
    /// Problems with `[keys]`, shown in the event log.
    pub keymap_errors: Vec<String>,
    /// Saved watchlist, re-subscribed at start.
    pub watchlist: Vec<WatchItem>,
    /// NO_COLOR: the mono theme.
    pub mono: bool,
    /// Host zone name when it is not IST (header warning).
    pub host_tz: Option<String>,
}

/// Main-area tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Symbol, LTP, change.
    Ltp,
    /// Quote fields.
    Quote,
    /// Depth of the selected instrument.
    Depth,
}

impl Tab {
    /// In display order.
    pub const ALL: [Tab; 3] = [Tab::Ltp, Tab::Quote, Tab::Depth];

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Ltp => "LTP",
            Tab::Quote => "Quote",
            Tab::Depth => "Depth",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// Row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The user's order.
    Watchlist,
    /// By symbol, A→Z.
    Symbol,
    /// By change %, highest first.
    Change,
    /// By volume, highest first.
    Volume,
}

impl SortKey {
    /// Shown in the tab bar.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Watchlist => "watchlist",
            SortKey::Symbol => "symbol",
            SortKey::Change => "change %",
            SortKey::Volume => "volume",
        }
    }

    fn next(self) -> SortKey {
        match self {
            SortKey::Watchlist => SortKey::Symbol,
            SortKey::Symbol => SortKey::Change,
            SortKey::Change => SortKey::Volume,
            SortKey::Volume => SortKey::Watchlist,
        }
    }

    fn needs_data(self) -> bool {
        matches!(self, SortKey::Change | SortKey::Volume)
    }
}

/// What a confirm bar is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirming {
    /// Unsubscribe everything.
    UnsubscribeAll,
    /// Force a reconnect.
    ForceReconnect,
}

/// What has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overlay {
    None,
    Help,
    Prompt,
    Confirm(Confirming),
    FaultMenu,
    Filter,
}

/// The subscribe prompt.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// Typed text.
    pub text: String,
    /// Mode for the instruments (Tab cycles; a trailing mode word overrides).
    pub mode: Mode,
    /// Why the last submit was refused.
    pub error: Option<String>,
}

/// One event-log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Unix ms (`None` until the first clock update, then back-filled).
    pub at_unix_ms: Option<i64>,
    /// Short kind: reconnect, resubscribed, stale, token_invalid, keys, ...
    pub kind: String,
    /// Human text.
    pub text: String,
}

/// Last price move of an instrument, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dir {
    /// No move seen yet.
    #[default]
    Flat,
    /// Last change was up.
    Up,
    /// Last change was down.
    Down,
}

/// What the UI copied from the book for one instrument.
#[derive(Debug, Clone, Copy)]
pub struct RowData {
    /// Latest merged tick.
    pub tick: Tick,
    /// When the book last updated it.
    pub updated: Instant,
    /// Direction of the last LTP change.
    pub dir: Dir,
    /// When the UI saw the LTP change.
    pub changed_at: Option<Instant>,
}

/// How a row must be presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// No data yet.
    Waiting,
    /// Fresh data on a live feed.
    Live,
    /// REST fallback: updating, but delayed.
    Delayed,
    /// Old data or a feed that is not live.
    Stale,
    /// Market closed: last known values.
    Closed,
}

impl RowStatus {
    /// Tag shown in the row ("" when live).
    pub fn tag(self) -> &'static str {
        match self {
            RowStatus::Waiting => "waiting",
            RowStatus::Live => "",
            RowStatus::Delayed => "delayed",
            RowStatus::Stale => "stale",
            RowStatus::Closed => "closed",
        }
    }
}

/// One visible row, as the view needs it.
#[derive(Debug, Clone)]
pub(crate) struct VisibleRow {
    pub inst: Arc<Instrument>,
    pub mode: Mode,
    pub decimals: usize,
    pub data: Option<RowData>,
    pub status: RowStatus,
    pub age_ms: Option<u64>,
    pub selected: bool,
    pub flash: bool,
}

/// The local proxy as the health pane shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ProxyPane {
    /// Not started (`[proxy] enabled = false`).
    #[default]
    Off,
    /// It could not start (busy port, key file): the reason.
    Failed(String),
    /// Running: its clients and counters.
    On(crate::proxy::ProxyStats),
}

/// The TUI state.
#[derive(Debug)]
pub struct App {
    pub(crate) source: String,
    pub(crate) simulator: bool,
    master: Arc<InstrumentMaster>,
    pub(crate) keymap: Keymap,
    pub(crate) theme: Theme,
    pub(crate) host_tz: Option<String>,
    /// The watchlist in the user's order, and its instruments (parallel vectors).
    items: Vec<WatchItem>,
    insts: Vec<Arc<Instrument>>,
    /// Indices into `items` after filter and sort.
    order: Vec<usize>,
    /// Position of the selection in `order`.
    pub(crate) selected: usize,
    /// First visible position in `order`.
    pub(crate) offset: usize,
    viewport: usize,
    pub(crate) tab: Tab,
    pub(crate) sort: SortKey,
    pub(crate) filter: String,
    pub(crate) overlay: Overlay,
    pub(crate) prompt: Prompt,
    paused: bool,
    quit: bool,
    pub(crate) health: Health,
    pub(crate) proxy: ProxyPane,
    pub(crate) events: VecDeque<LogLine>,
    pub(crate) clock: Option<chrono::DateTime<chrono::Utc>>,
    /// `now` of the last refresh: ages and flashes are measured against it.
    pub(crate) now: Option<Instant>,
    cache: HashMap<FeedKey, RowData>,
    /// (change %, volume) of every instrument, only while sorting by them.
    sort_vals: HashMap<FeedKey, (f64, u64)>,
    needs_refresh: bool,
}

impl App {
    /// A new app and the commands that re-subscribe the saved watchlist (one `Subscribe` per
    /// mode, in watchlist order). Unknown saved symbols are reported in the event log and left
    /// out.
    pub fn new(init: AppInit) -> (App, Vec<Cmd>) {
        let mut app = App {
            source: init.source,
            simulator: init.simulator,
            master: init.master,
            keymap: init.keymap,
            theme: Theme::pick(init.mono),
            host_tz: init.host_tz,
            items: Vec::new(),
            insts: Vec::new(),
            order: Vec::new(),
            selected: 0,
            offset: 0,
            viewport: 10,
            tab: Tab::Ltp,
            sort: SortKey::Watchlist,
            filter: String::new(),
            overlay: Overlay::None,
            prompt: Prompt::default(),
            paused: false,
            quit: false,
            health: Health::default(),
            proxy: ProxyPane::Off,
            events: VecDeque::new(),
            clock: None,
            now: None,
            cache: HashMap::new(),
            sort_vals: HashMap::new(),
            needs_refresh: true,
        };
        for e in init.keymap_errors {
            app.log("keys", e);
        }
        for w in init.watchlist {
            match app.master.resolve(&w.symbol) {
                Ok(inst) => {
                    app.add(inst, w.mode);
                }
                Err(e) => app.log("watchlist", format!("{e}; left out")),
            }
        }
        app.reorder();
        let mut cmds = Vec::new();
        for mode in [Mode::Ltp, Mode::Quote, Mode::Depth] {
            let list: Vec<Arc<Instrument>> = app
                .items
                .iter()
                .zip(&app.insts)
                .filter(|(w, _)| w.mode == mode)
                .map(|(_, i)| i.clone())
                .collect();
            if !list.is_empty() {
                cmds.push(Cmd::Subscribe(list, mode));
            }
        }
        if !app.items.is_empty() {
            let n = app.items.len();
            app.log("subscribe", format!("re-subscribing {n} saved instruments"));
        }
        (app, cmds)
    }

    /// Append to the event log with the app's clock.
    fn log(&mut self, kind: &str, text: impl Into<String>) {
        let at = self.clock.map(|c| c.timestamp_millis());
        self.push_log(LogLine {
            at_unix_ms: at,
            kind: kind.to_string(),
            text: text.into(),
        });
    }

    fn push_log(&mut self, l: LogLine) {
        if self.events.len() >= EVENT_LOG_CAP {
            self.events.pop_front();
        }
        self.events.push_back(l);
    }

    /// Add or re-mode an instrument; returns true when it is new.
    fn add(&mut self, inst: Arc<Instrument>, mode: Mode) -> bool {
        if let Some(i) = self.insts.iter().position(|x| x.key == inst.key) {
            self.items[i].mode = mode;
            return false;
        }
        self.items.push(WatchItem {
            symbol: inst.display_name(),
            mode,
        });
        self.insts.push(inst);
        true
    }

    /// Key of the selected instrument.
    fn selected_key(&self) -> Option<FeedKey> {
        self.order
            .get(self.selected)
            .and_then(|&i| self.insts.get(i))
            .map(|x| x.key)
    }

    /// Recompute the filtered, sorted order, keeping the selected instrument selected.
    fn reorder(&mut self) {
        let keep = self.selected_key();
        let f = self.filter.to_ascii_uppercase();
        let mut order: Vec<usize> = (0..self.items.len())
            .filter(|&i| f.is_empty() || self.items[i].symbol.contains(&f))
            .collect();
        let vals = |i: usize| {
            self.sort_vals
                .get(&self.insts[i].key)
                .copied()
                .unwrap_or((f64::NEG_INFINITY, 0))
        };
        match self.sort {
            SortKey::Watchlist => {}
            SortKey::Symbol => {
                order.sort_by(|&a, &b| self.items[a].symbol.cmp(&self.items[b].symbol))
            }
            SortKey::Change => order.sort_by(|&a, &b| vals(b).0.total_cmp(&vals(a).0)),
            SortKey::Volume => order.sort_by_key(|&i| std::cmp::Reverse(vals(i).1)),
        }
        self.order = order;
        self.selected = keep
            .and_then(|k| self.order.iter().position(|&i| self.insts[i].key == k))
            .unwrap_or(self.selected)
            .min(self.order.len().saturating_sub(1));
        self.scroll();
        self.needs_refresh = true;
    }

    /// Keep the selection inside the window.
    fn scroll(&mut self) {
        let vp = self.viewport.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + vp {
            self.offset = self.selected + 1 - vp;
        }
        self.offset = self.offset.min(self.order.len().saturating_sub(vp));
    }

    /// The keyboard context.
    pub fn context(&self) -> Context {
        match self.overlay {
            Overlay::None => Context::Normal,
            Overlay::Help => Context::Help,
            Overlay::Prompt => Context::Prompt,
            Overlay::Confirm(_) => Context::Confirm,
            Overlay::FaultMenu => Context::FaultMenu,
            Overlay::Filter => Context::Filter,
        }
    }

    fn select(&mut self, pos: usize) {
        self.selected = pos.min(self.order.len().saturating_sub(1));
        self.scroll();
        self.needs_refresh = true;
    }

    /// New health snapshot.
    pub fn on_health(&mut self, h: Health) {
        self.health = h;
    }

    /// New state of the local proxy (clients and their subscription counts).
    pub fn on_proxy(&mut self, p: ProxyPane) {
        self.proxy = p;
    }

    /// An engine event for the log.
    pub fn on_event(&mut self, e: EngineEvent) {
        self.push_log(LogLine {
            at_unix_ms: Some(e.at_unix_ms),
            kind: e.kind.to_string(),
            text: e.text,
        });
    }

    /// The event receiver lagged: `n` events were dropped.
    pub fn on_events_lagged(&mut self, n: u64) {
        self.log("lagged", format!("{n} events skipped"));
    }

    /// Header clock (shown in IST) and market phase; back-fills log lines written before the
    /// first clock update.
    pub fn set_clock(&mut self, now: chrono::DateTime<chrono::Utc>) {
        let ms = now.timestamp_millis();
        if self.clock.is_none() {
            for l in self.events.iter_mut().filter(|l| l.at_unix_ms.is_none()) {
                l.at_unix_ms = Some(ms);
            }
        }
        self.clock = Some(now);
    }

    /// How many table rows fit (from `view::table_rows`).
    pub fn set_viewport(&mut self, table_rows: u16) {
        let vp = usize::from(table_rows).max(1);
        if vp != self.viewport {
            self.viewport = vp;
            self.scroll();
            self.needs_refresh = true;
        }
    }

    /// True once quit was asked for.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// True while the display is frozen.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The watchlist in the user's order.
    pub fn watchlist(&self) -> &[WatchItem] {
        &self.items
    }

    /// True when the visible window, tab or selection changed since the last refresh: the
    /// runtime should refresh before the next draw even if the book did not change.
    pub fn needs_refresh(&self) -> bool {
        self.needs_refresh && !self.paused
    }

    /// Current tab.
    pub fn tab(&self) -> Tab {
        self.tab
    }

    /// Current sort.
    pub fn sort(&self) -> SortKey {
        self.sort
    }

    /// Current filter text.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Symbols in display order (after filter and sort).
    pub fn rows(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(|&i| self.items[i].symbol.as_str())
            .collect()
    }

    /// The selected symbol.
    pub fn selected_symbol(&self) -> Option<&str> {
        self.order
            .get(self.selected)
            .map(|&i| self.items[i].symbol.as_str())
    }

    /// Position of the selection and the first visible row.
    pub fn selection(&self) -> (usize, usize) {
        (self.selected, self.offset)
    }

    /// The subscribe prompt.
    pub fn prompt(&self) -> &Prompt {
        &self.prompt
    }

    /// What the open confirm bar asks, if one is open.
    pub fn confirming(&self) -> Option<Confirming> {
        match self.overlay {
            Overlay::Confirm(c) => Some(c),
            _ => None,
        }
    }

    /// The event log, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &LogLine> {
        self.events.iter()
    }

    /// Latest health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Number of rows after filtering.
    pub(crate) fn row_count(&self) -> usize {
        self.order.len()
    }

    /// Size of the watchlist.
    pub(crate) fn watch_len(&self) -> usize {
        self.items.len()
    }
}

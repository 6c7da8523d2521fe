//! Rows: copying the visible window from the book, and how each row must be presented.

use super::{App, Dir, FLASH, RowData, RowStatus, STALE_AFTER, VisibleRow};
use crate::engine::book::QuoteBook;
use crate::engine::health::EngineState;
use crate::model::{FeedKey, Tick};
use tokio::time::Instant;

impl App {
    /// Copy the visible rows (and the selected instrument) from the book. While sorting by
    /// change or volume, also the two sort values of every instrument (numbers, no rows). A
    /// no-op while paused.
    pub fn refresh(&mut self, book: &QuoteBook, now: Instant) {
        if self.paused {
            return;
        }
        self.now = Some(now);
        if self.sort.needs_data() {
            let keys: Vec<FeedKey> = self.insts.iter().map(|i| i.key).collect();
            let vals = book.get_many(&keys);
            self.sort_vals.clear();
            for (k, e) in keys.iter().zip(vals) {
                if let Some(e) = e {
                    let q = e.tick.quote.unwrap_or_default();
                    self.sort_vals.insert(*k, (q.change, q.volume));
                }
            }
            self.reorder();
        }
        let mut keys: Vec<FeedKey> = self
            .visible_range()
            .map(|p| self.insts[self.order[p]].key)
            .collect();
        if let Some(k) = self.selected_key()
            && !keys.contains(&k)
        {
            keys.push(k);
        }
        for (k, e) in keys.iter().zip(book.get_many(&keys)) {
            let Some(e) = e else { continue };
            let prev = self.cache.get(k).copied();
            let (dir, changed_at) = match prev {
                Some(p) if e.tick.ltp > p.tick.ltp => (Dir::Up, Some(now)),
                Some(p) if e.tick.ltp < p.tick.ltp => (Dir::Down, Some(now)),
                Some(p) => (p.dir, p.changed_at),
                None => (Dir::Flat, None),
            };
            self.cache.insert(
                *k,
                RowData {
                    tick: e.tick,
                    updated: e.updated,
                    dir,
                    changed_at,
                },
            );
        }
        self.needs_refresh = false;
    }

    fn visible_range(&self) -> std::ops::Range<usize> {
        let end = (self.offset + self.viewport.max(1)).min(self.order.len());
        self.offset.min(end)..end
    }

    /// True while a price-change highlight is showing (the runtime keeps drawing until it fades).
    pub fn flashing(&self, now: Instant) -> bool {
        self.cache.values().any(|r| {
            r.changed_at
                .is_some_and(|t| now.saturating_duration_since(t) < FLASH)
        })
    }

    /// The tick shown for a symbol (what the last refresh copied).
    pub fn shown_tick(&self, symbol: &str) -> Option<Tick> {
        let i = self.items.iter().position(|w| w.symbol == symbol)?;
        self.cache.get(&self.insts[i].key).map(|r| r.tick)
    }

    /// Status of a row given its data and the feed state.
    pub(crate) fn status(&self, data: Option<&RowData>) -> (RowStatus, Option<u64>) {
        let Some(d) = data else {
            return (RowStatus::Waiting, None);
        };
        let age = self
            .now
            .map(|n| n.saturating_duration_since(d.updated).as_millis() as u64);
        let old = age.is_some_and(|a| a > STALE_AFTER.as_millis() as u64);
        let s = match self.health.state {
            EngineState::Live if old => RowStatus::Stale,
            EngineState::Live => RowStatus::Live,
            EngineState::FallbackRest if old => RowStatus::Stale,
            EngineState::FallbackRest => RowStatus::Delayed,
            EngineState::Closed => RowStatus::Closed,
            _ => RowStatus::Stale,
        };
        (s, age)
    }

    /// The rows in the window `[offset, offset + n)`, built for drawing.
    pub(crate) fn visible(&self, n: usize) -> Vec<VisibleRow> {
        let end = (self.offset + n).min(self.order.len());
        (self.offset.min(end)..end)
            .map(|p| self.row_at(p))
            .collect()
    }

    fn row_at(&self, p: usize) -> VisibleRow {
        let i = self.order[p];
        let inst = self.insts[i].clone();
        let data = self.cache.get(&inst.key).copied();
        let (status, age_ms) = self.status(data.as_ref());
        let flash = match (data.and_then(|d| d.changed_at), self.now) {
            (Some(t), Some(n)) => n.saturating_duration_since(t) < FLASH,
            _ => false,
        };
        VisibleRow {
            decimals: crate::tui::format::decimals(&inst.exchange, inst.key),
            inst,
            mode: self.items[i].mode,
            data,
            status,
            age_ms,
            selected: p == self.selected,
            flash,
        }
    }

    /// The selected row (for the depth tab).
    pub(crate) fn selected_row(&self) -> Option<VisibleRow> {
        (self.selected < self.order.len()).then(|| self.row_at(self.selected))
    }
}

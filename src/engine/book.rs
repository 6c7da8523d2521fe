//! The conflated latest-value book renderers read at their own frame rate.

use crate::model::{FeedKey, Tick};
use std::collections::HashMap;
use std::sync::RwLock;
use tokio::time::Instant;

/// Latest state of one instrument.
#[derive(Debug, Clone, Copy)]
pub struct BookEntry {
    /// Latest merged tick (fields above the last packet's mode kept from earlier packets).
    pub tick: Tick,
    /// When the last tick arrived.
    pub updated: Instant,
    /// Ticks received for this instrument.
    pub count: u64,
}

/// Latest value per instrument. Writers hold the lock per frame, readers per snapshot; the
/// lock is never held across an await.
#[derive(Debug, Default)]
pub struct QuoteBook {
    map: RwLock<HashMap<FeedKey, BookEntry>>,
}

/// Merge a packet into the previous state: a lower-mode packet (LTP after quote) refreshes
/// what it carries and keeps the richer fields.
fn merge(old: &mut Tick, new: &Tick) {
    if new.mode >= old.mode {
        *old = *new;
        return;
    }
    old.ltp = new.ltp;
    if let Some(q) = new.quote {
        old.quote = Some(q);
    } else if let Some(q) = old.quote.as_mut() {
        let close = q.ohlc.close.to_f64();
        q.change = if q.ohlc.close.0 == 0 {
            0.0
        } else {
            (new.ltp.to_f64() - close) * 100.0 / close
        };
    }
}

impl QuoteBook {
    /// Apply a batch of ticks received at `now`.
    pub fn apply(&self, ticks: &[Tick], now: Instant) {
        if ticks.is_empty() {
            return;
        }
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        for t in ticks {
            m.entry(t.key)
                .and_modify(|e| {
                    merge(&mut e.tick, t);
                    e.updated = now;
                    e.count += 1;
                })
                .or_insert(BookEntry {
                    tick: *t,
                    updated: now,
                    count: 1,
                });
        }
    }

    /// Latest entry for one instrument.
    pub fn get(&self, k: &FeedKey) -> Option<BookEntry> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(k)
            .copied()
    }

    /// Latest entries for several instruments (one lock for the batch).
    pub fn get_many(&self, keys: &[FeedKey]) -> Vec<Option<BookEntry>> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().map(|k| m.get(k).copied()).collect()
    }

    /// Forget instruments no consumer wants any more.
    pub fn retain(&self, keep: impl Fn(&FeedKey) -> bool) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    /// Instruments in the book.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, Ohlc, Price, Quote};

    #[test]
    fn ltp_after_quote_keeps_quote_fields() {
        let b = QuoteBook::default();
        let k = FeedKey::kite(257);
        let q = Quote {
            volume: 10,
            ohlc: Ohlc {
                close: Price::from_raw(10000, 100),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut t = Tick::ltp(k, Price::from_raw(10100, 100));
        t.mode = Mode::Quote;
        t.quote = Some(q);
        let now = Instant::now();
        b.apply(&[t, Tick::ltp(k, Price::from_raw(10200, 100))], now);
        let e = b.get(&k).unwrap();
        assert_eq!(e.count, 2);
        assert_eq!(e.tick.mode, Mode::Quote);
        assert_eq!(e.tick.ltp, Price::from_raw(10200, 100));
        let qq = e.tick.quote.unwrap();
        assert_eq!(qq.volume, 10);
        assert!((qq.change - 2.0).abs() < 1e-9);
    }
}

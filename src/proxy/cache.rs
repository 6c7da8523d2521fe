//! Serialised `market_data` messages shared by every client that wants the same tick in the
//! same mode under the same name: one serialisation per tick per mode, not per client. The
//! engine already shares one `Arc<Tick>` among the consumers wanting a mode; an entry holds
//! that `Arc`, so its address cannot be reused while the entry lives.
//!
//! Direct-mapped and sharded: a lookup locks one small shard for a compare and a clone; a
//! miss overwrites the slot. Bounded by construction (`SHARDS * SLOTS` entries): sharing
//! only has to outlive one frame's fan-out, and a larger cache pinning more ticks measurably
//! slowed the one-client case (benches/proxy.rs).

use super::protocol::SymbolRef;
use crate::model::{Mode, Tick};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::Utf8Bytes;

const SHARDS: usize = 32;
const SLOTS: usize = 128;

struct Entry {
    tick: Arc<Tick>,
    mode: Mode,
    symbol: String,
    exchange: String,
    /// `None`: the tick does not carry what the mode needs (remembered too).
    msg: Option<Utf8Bytes>,
}

/// See the module docs.
pub struct MessageCache {
    shards: Vec<Mutex<Vec<Option<Entry>>>>,
}

impl Default for MessageCache {
    fn default() -> Self {
        MessageCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new((0..SLOTS).map(|_| None).collect()))
                .collect(),
        }
    }
}

impl MessageCache {
    /// The message for (`tick`, `mode`, `sym`), made by `make` on a miss.
    pub fn get_or_make(
        &self,
        tick: &Arc<Tick>,
        mode: Mode,
        sym: &SymbolRef,
        make: impl FnOnce() -> Option<String>,
    ) -> Option<Utf8Bytes> {
        if Arc::strong_count(tick) == 1 {
            // Nobody else holds this tick (no other consumer's queue has it): no one to share
            // with, and pinning it here would only cost memory.
            return make().map(Utf8Bytes::from);
        }
        let mut h = DefaultHasher::new();
        (Arc::as_ptr(tick) as usize).hash(&mut h);
        mode.hash(&mut h);
        sym.hash(&mut h);
        let x = h.finish() as usize;
        let (shard, slot) = (x % SHARDS, (x / SHARDS) % SLOTS);
        {
            let g = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = &g[slot]
                && Arc::ptr_eq(&e.tick, tick)
                && e.mode == mode
                && e.symbol == sym.symbol
                && e.exchange == sym.exchange
            {
                return e.msg.clone();
            }
        }
        // Serialise outside the lock; a racing client may do the same work once.
        let msg = make().map(Utf8Bytes::from);
        let mut g = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        g[slot] = Some(Entry {
            tick: tick.clone(),
            mode,
            symbol: sym.symbol.clone(),
            exchange: sym.exchange.clone(),
            msg: msg.clone(),
        });
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeedKey, Price};

    #[test]
    fn one_serialisation_per_tick_mode_and_name() {
        let c = MessageCache::default();
        let t = Arc::new(Tick::ltp(FeedKey::kite(1), Price::from_raw(100, 100)));
        // Another consumer holds it too, as the engine's fan-out does.
        let _other = t.clone();
        let s = SymbolRef {
            symbol: "A".into(),
            exchange: "NSE".into(),
        };
        let mut made = 0;
        for _ in 0..3 {
            let m = c.get_or_make(&t, Mode::Ltp, &s, || {
                made += 1;
                Some("x".into())
            });
            assert_eq!(m.as_deref(), Some("x"));
        }
        assert_eq!(made, 1);
        // Another name, mode or tick is another message.
        let other = SymbolRef {
            symbol: "B".into(),
            ..s.clone()
        };
        c.get_or_make(&t, Mode::Ltp, &other, || {
            made += 1;
            Some("y".into())
        });
        c.get_or_make(&t, Mode::Quote, &s, || {
            made += 1;
            None
        });
        let t2 = Arc::new(*t);
        let _other2 = t2.clone();
        c.get_or_make(&t2, Mode::Ltp, &s, || {
            made += 1;
            Some("z".into())
        });
        assert_eq!(made, 4);
        // A tick nobody else holds is made every time, never cached.
        let lone = Arc::new(*t);
        for _ in 0..2 {
            c.get_or_make(&lone, Mode::Ltp, &s, || {
                made += 1;
                Some("w".into())
            });
        }
        assert_eq!(made, 6);
    }
}

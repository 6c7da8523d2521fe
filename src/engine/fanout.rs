//! Bounded per-consumer stream queues. When a consumer falls behind, its queue conflates per
//! instrument: it still receives the latest value of every instrument, the superseded ticks
//! are counted as drops, and the engine never waits for it.

use crate::model::{FeedKey, Instrument, Tick};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One tick delivered to a stream consumer.
#[derive(Debug, Clone)]
pub struct StreamItem {
    /// The instrument.
    pub instrument: Arc<Instrument>,
    /// The tick, trimmed to the mode this consumer asked for; shared by every consumer
    /// wanting that mode (a full tick is ~400 bytes: never copied per consumer).
    pub tick: Arc<Tick>,
    /// When the engine read the frame carrying it from the socket.
    pub read_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<StreamItem>,
    /// Latest value per instrument once the queue is full; bounded by the desired set.
    overflow: HashMap<FeedKey, StreamItem>,
    order: VecDeque<FeedKey>,
    dropped: u64,
    delivered: u64,
}

/// A consumer's slot in the engine: liveness flag and, for streaming consumers, its queue.
#[derive(Debug)]
pub struct Slot {
    closed: AtomicBool,
    cap: usize,
    inner: Mutex<Inner>,
    notify: Notify,
    streaming: bool,
}

impl Slot {
    /// A slot; `cap` = queue bound (0 for a non-streaming consumer).
    pub fn new(cap: usize) -> Arc<Slot> {
        Arc::new(Slot {
            closed: AtomicBool::new(false),
            cap,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            streaming: cap > 0,
        })
    }

    /// Whether this consumer receives a stream.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Mark closed (consumer gone, or engine stopped). Wakes a waiting receiver.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Enqueue without ever waiting. Full queue → conflate per instrument (latest wins).
    pub fn push(&self, item: StreamItem) {
        let mut one = vec![item];
        self.push_many(&mut one);
    }

    /// Enqueue a frame's worth of items under one lock and one wake-up (drains `items`).
    pub fn push_many(&self, items: &mut Vec<StreamItem>) {
        if !self.streaming || self.is_closed() {
            items.clear();
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for item in items.drain(..) {
            let key = item.tick.key;
            if let Some(slot) = g.overflow.get_mut(&key) {
                *slot = item;
                g.dropped += 1;
            } else if g.queue.len() < self.cap {
                g.queue.push_back(item);
            } else {
                g.overflow.insert(key, item);
                g.order.push_back(key);
            }
        }
        drop(g);
        self.notify.notify_one();
    }

    /// Wait for at least one item, then move up to `max` ready items into `out` under one
    /// lock. Returns 0 once closed and drained.
    pub async fn recv_many(&self, out: &mut Vec<StreamItem>, max: usize) -> usize {
        loop {
            let notified = self.notify.notified();
            let n = self.pop_many(out, max);
            if n > 0 {
                return n;
            }
            if self.is_closed() {
                return 0;
            }
            notified.await;
        }
    }

    fn pop_many(&self, out: &mut Vec<StreamItem>, max: usize) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        while n < max {
            let item = match g.queue.pop_front() {
                Some(i) => i,
                None => {
                    let Some(k) = g.order.pop_front() else { break };
                    match g.overflow.remove(&k) {
                        Some(i) => i,
                        None => continue,
                    }
                }
            };
            out.push(item);
            n += 1;
        }
        g.delivered += n as u64;
        n
    }

    fn pop(&self) -> Option<StreamItem> {
        let mut one = Vec::with_capacity(1);
        self.pop_many(&mut one, 1);
        one.pop()
    }

    /// Next item; `None` once closed and drained.
    pub async fn recv(&self) -> Option<StreamItem> {
        loop {
            let notified = self.notify.notified();
            if let Some(i) = self.pop() {
                return Some(i);
            }
            if self.is_closed() {
                return None;
            }
            notified.await;
        }
    }

    /// Next item if one is ready.
    pub fn try_recv(&self) -> Option<StreamItem> {
        self.pop()
    }

    /// Ticks conflated away so far.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).dropped
    }

    /// Items waiting.
    pub fn pending(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.queue.len() + g.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Price;

    fn item(token: u32, px: i64) -> StreamItem {
        StreamItem {
            instrument: Arc::new(Instrument {
                exchange: "NSE".into(),
                symbol: "X".into(),
                key: FeedKey::kite(token),
            }),
            tick: Arc::new(Tick::ltp(FeedKey::kite(token), Price::from_raw(px, 100))),
            read_at: Instant::now(),
        }
    }

    #[tokio::test]
    async fn full_queue_conflates_per_instrument_latest_wins() {
        let s = Slot::new(2);
        for px in 1..=5 {
            s.push(item(257, px));
            s.push(item(513, px * 10));
        }
        // queue holds the first two; the overflow holds the latest of each instrument
        let got: Vec<(u32, i64)> = std::iter::from_fn(|| s.try_recv())
            .map(|i| (i.tick.key.token, i.tick.ltp.to_raw(100)))
            .collect();
        assert_eq!(got, vec![(257, 1), (513, 10), (257, 5), (513, 50)]);
        assert_eq!(s.dropped(), 6);
        s.close();
        assert!(s.recv().await.is_none());
    }

    #[tokio::test]
    async fn batches_push_and_receive_under_one_lock() {
        let s = Slot::new(3);
        let mut batch: Vec<_> = (1..=5).map(|px| item(257, px)).collect();
        s.push_many(&mut batch);
        assert!(batch.is_empty());
        let mut out = Vec::new();
        assert_eq!(s.recv_many(&mut out, 10).await, 4);
        let px: Vec<i64> = out.iter().map(|i| i.tick.ltp.to_raw(100)).collect();
        assert_eq!(px, vec![1, 2, 3, 5]);
        assert_eq!(s.dropped(), 1);
    }

    #[tokio::test]
    async fn per_instrument_order_is_preserved_across_overflow() {
        let s = Slot::new(1);
        s.push(item(257, 1));
        s.push(item(257, 2)); // overflow
        s.push(item(513, 1)); // overflow (queue full)
        s.push(item(257, 3)); // replaces overflow 2
        let got: Vec<(u32, i64)> = std::iter::from_fn(|| s.try_recv())
            .map(|i| (i.tick.key.token, i.tick.ltp.to_raw(100)))
            .collect();
        assert_eq!(got, vec![(257, 1), (257, 3), (513, 1)]);
    }
}

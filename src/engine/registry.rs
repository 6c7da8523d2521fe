//! The subscription registry: what every consumer wants (desired, refcounted per consumer;
//! upstream mode = the highest mode any consumer wants) and what the current connection has
//! been told (applied). The engine sends only the difference upstream.

use crate::model::{FeedKey, Instrument, Mode};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A consumer of the engine (the TUI, a stream, a proxy client).
pub type ConsumerId = u64;

/// Why a subscribe was refused. Nothing is applied when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The broker's per-connection instrument limit would be exceeded.
    #[error(
        "subscription limit: {requested} new instruments would make {total}, above the broker's limit of {limit} per connection; nothing was subscribed"
    )]
    Limit {
        /// New instruments in the request.
        requested: usize,
        /// Total desired after the request.
        total: usize,
        /// The broker's limit.
        limit: usize,
    },
}

#[derive(Debug, Clone)]
struct Desired {
    instrument: Arc<Instrument>,
    /// Number of consumers wanting each mode (index = Mode as usize).
    by_mode: [u32; 3],
}

impl Desired {
    fn mode(&self) -> Option<Mode> {
        [Mode::Depth, Mode::Quote, Mode::Ltp]
            .into_iter()
            .find(|m| self.by_mode[*m as usize] > 0)
    }
    fn refs(&self) -> u32 {
        self.by_mode.iter().sum()
    }
}

/// Changes to send upstream to make applied equal desired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// New subscriptions, grouped by mode.
    pub subscribe: Vec<(Mode, Vec<FeedKey>)>,
    /// Mode changes of already-applied keys, grouped by mode.
    pub mode: Vec<(Mode, Vec<FeedKey>)>,
    /// Keys to unsubscribe.
    pub unsubscribe: Vec<FeedKey>,
}

impl Diff {
    /// True when nothing needs sending.
    pub fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.mode.is_empty() && self.unsubscribe.is_empty()
    }
}

/// Subscription registry (pure; no I/O).
#[derive(Debug, Default)]
pub struct Registry {
    limit: usize,
    consumers: HashMap<ConsumerId, HashMap<FeedKey, Mode>>,
    desired: HashMap<FeedKey, Desired>,
    applied: HashMap<FeedKey, Mode>,
}

fn group(it: impl Iterator<Item = (FeedKey, Mode)>) -> Vec<(Mode, Vec<FeedKey>)> {
    let mut g: BTreeMap<Mode, Vec<FeedKey>> = BTreeMap::new();
    for (k, m) in it {
        g.entry(m).or_default().push(k);
    }
    g.into_iter()
        .map(|(m, mut v)| {
            v.sort();
            (m, v)
        })
        .collect()
}

impl Registry {
    /// A registry enforcing the broker's per-connection instrument limit.
    pub fn new(limit: usize) -> Registry {
        Registry {
            limit,
            ..Default::default()
        }
    }

    /// Register a consumer (idempotent).
    pub fn add_consumer(&mut self, c: ConsumerId) {
        self.consumers.entry(c).or_default();
    }

    /// Known consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Subscribe `c` to `instruments` in `mode` (replacing its earlier mode for a key).
    /// All-or-nothing: beyond the limit nothing changes.
    pub fn subscribe(
        &mut self,
        c: ConsumerId,
        instruments: &[Arc<Instrument>],
        mode: Mode,
    ) -> Result<(), SubscribeError> {
        let mut new_keys: Vec<FeedKey> = instruments
            .iter()
            .map(|i| i.key)
            .filter(|k| !self.desired.contains_key(k))
            .collect();
        new_keys.sort();
        new_keys.dedup();
        let total = self.desired.len() + new_keys.len();
        if total > self.limit {
            return Err(SubscribeError::Limit {
                requested: new_keys.len(),
                total,
                limit: self.limit,
            });
        }
        let mine = self.consumers.entry(c).or_default();
        for inst in instruments {
            let d = self.desired.entry(inst.key).or_insert_with(|| Desired {
                instrument: inst.clone(),
                by_mode: [0; 3],
            });
            if let Some(old) = mine.insert(inst.key, mode) {
                d.by_mode[old as usize] -= 1;
            }
            d.by_mode[mode as usize] += 1;
        }
        Ok(())
    }

    /// Drop `c`'s interest in `keys`; a key leaves the desired set when no consumer wants it.
    pub fn unsubscribe(&mut self, c: ConsumerId, keys: &[FeedKey]) {
        let Some(mine) = self.consumers.get_mut(&c) else {
            return;
        };
        for k in keys {
            if let Some(m) = mine.remove(k) {
                Self::release(&mut self.desired, *k, m);
            }
        }
    }

    /// Drop everything `c` wants and forget the consumer.
    pub fn remove_consumer(&mut self, c: ConsumerId) {
        if let Some(mine) = self.consumers.remove(&c) {
            for (k, m) in mine {
                Self::release(&mut self.desired, k, m);
            }
        }
    }

    /// Drop everything `c` wants but keep the consumer registered.
    pub fn unsubscribe_all(&mut self, c: ConsumerId) {
        if let Some(mine) = self.consumers.get_mut(&c) {
            for (k, m) in mine.drain() {
                Self::release(&mut self.desired, k, m);
            }
        }
    }

    fn release(desired: &mut HashMap<FeedKey, Desired>, k: FeedKey, m: Mode) {
        if let Some(d) = desired.get_mut(&k) {
            d.by_mode[m as usize] -= 1;
            if d.refs() == 0 {
                desired.remove(&k);
            }
        }
    }

    /// The upstream mode wanted for a key, if any consumer wants it.
    pub fn desired_mode(&self, k: &FeedKey) -> Option<Mode> {
        self.desired.get(k).and_then(Desired::mode)
    }

    /// Instrument for a desired key.
    pub fn instrument(&self, k: &FeedKey) -> Option<&Arc<Instrument>> {
        self.desired.get(k).map(|d| &d.instrument)
    }

    /// The mode `c` wants for `k`.
    pub fn consumer_mode(&self, c: ConsumerId, k: &FeedKey) -> Option<Mode> {
        self.consumers.get(&c).and_then(|m| m.get(k).copied())
    }

    /// What `c` holds.
    pub fn consumer_keys(&self, c: ConsumerId) -> Vec<(FeedKey, Mode)> {
        self.consumers
            .get(&c)
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Number of desired instruments.
    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    /// Number of instruments applied on the current connection.
    pub fn applied_len(&self) -> usize {
        self.applied.len()
    }

    /// Applied set (key → mode) on the current connection.
    pub fn applied(&self) -> &HashMap<FeedKey, Mode> {
        &self.applied
    }

    /// The whole desired set grouped by upstream mode (the replay set after a reconnect).
    pub fn desired_groups(&self) -> Vec<(Mode, Vec<FeedKey>)> {
        group(
            self.desired
                .iter()
                .filter_map(|(k, d)| d.mode().map(|m| (*k, m))),
        )
    }

    /// Desired (key, mode) pairs, sorted.
    pub fn desired_set(&self) -> BTreeMap<FeedKey, Mode> {
        self.desired
            .iter()
            .filter_map(|(k, d)| d.mode().map(|m| (*k, m)))
            .collect()
    }

    /// The changes that make applied equal desired.
    pub fn diff(&self) -> Diff {
        let subscribe = group(self.desired.iter().filter_map(|(k, d)| {
            let m = d.mode()?;
            (!self.applied.contains_key(k)).then_some((*k, m))
        }));
        let mode = group(self.desired.iter().filter_map(|(k, d)| {
            let m = d.mode()?;
            match self.applied.get(k) {
                Some(a) if *a != m => Some((*k, m)),
                _ => None,
            }
        }));
        let mut unsubscribe: Vec<FeedKey> = self
            .applied
            .keys()
            .filter(|k| !self.desired.contains_key(k))
            .copied()
            .collect();
        unsubscribe.sort();
        Diff {
            subscribe,
            mode,
            unsubscribe,
        }
    }

    /// Record that a diff was sent on the current connection.
    pub fn mark_sent(&mut self, d: &Diff) {
        for (m, keys) in d.subscribe.iter().chain(d.mode.iter()) {
            for k in keys {
                self.applied.insert(*k, *m);
            }
        }
        for k in &d.unsubscribe {
            self.applied.remove(k);
        }
    }

    /// The connection is gone: nothing is applied any more.
    pub fn clear_applied(&mut self) {
        self.applied.clear();
    }

    /// Check the registry's invariants (used by property tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts: HashMap<FeedKey, [u32; 3]> = HashMap::new();
        for m in self.consumers.values() {
            for (k, mode) in m {
                counts.entry(*k).or_insert([0; 3])[*mode as usize] += 1;
            }
        }
        if counts.len() != self.desired.len() {
            return Err(format!(
                "desired has {} keys, consumers want {}",
                self.desired.len(),
                counts.len()
            ));
        }
        for (k, c) in &counts {
            let d = self
                .desired
                .get(k)
                .ok_or(format!("{k} wanted, not desired"))?;
            if d.by_mode != *c {
                return Err(format!("{k}: refcounts {:?} != {:?}", d.by_mode, c));
            }
            if d.refs() == 0 {
                return Err(format!("{k}: desired with zero refs"));
            }
        }
        if self.desired.len() > self.limit {
            return Err("desired above limit".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inst(token: u32) -> Arc<Instrument> {
        Arc::new(Instrument {
            exchange: "NSE".into(),
            symbol: format!("S{token}"),
            key: FeedKey::kite(token),
        })
    }

    #[test]
    fn refcounted_unsubscribe_keeps_other_consumers() {
        let mut r = Registry::new(10);
        r.subscribe(1, &[inst(257), inst(513)], Mode::Ltp).unwrap();
        r.subscribe(2, &[inst(257)], Mode::Depth).unwrap();
        assert_eq!(r.desired_mode(&FeedKey::kite(257)), Some(Mode::Depth));
        r.unsubscribe(2, &[FeedKey::kite(257)]);
        assert_eq!(r.desired_mode(&FeedKey::kite(257)), Some(Mode::Ltp));
        r.unsubscribe(1, &[FeedKey::kite(257)]);
        assert_eq!(r.desired_mode(&FeedKey::kite(257)), None);
        assert_eq!(r.desired_len(), 1);
    }

    #[test]
    fn diff_sends_only_the_difference() {
        let mut r = Registry::new(10);
        r.subscribe(1, &[inst(257), inst(513)], Mode::Quote)
            .unwrap();
        let d = r.diff();
        assert_eq!(
            d.subscribe,
            vec![(Mode::Quote, vec![FeedKey::kite(257), FeedKey::kite(513)])]
        );
        r.mark_sent(&d);
        assert!(r.diff().is_empty());
        r.subscribe(2, &[inst(513)], Mode::Depth).unwrap();
        r.unsubscribe(1, &[FeedKey::kite(257)]);
        let d = r.diff();
        assert!(d.subscribe.is_empty());
        assert_eq!(d.mode, vec![(Mode::Depth, vec![FeedKey::kite(513)])]);
        assert_eq!(d.unsubscribe, vec![FeedKey::kite(257)]);
        r.mark_sent(&d);
        assert!(r.diff().is_empty());
    }

    #[test]
    fn limit_is_all_or_nothing() {
        let mut r = Registry::new(3);
        r.subscribe(1, &[inst(1), inst(2)], Mode::Ltp).unwrap();
        let e = r.subscribe(1, &[inst(3), inst(4)], Mode::Ltp).unwrap_err();
        assert!(matches!(
            e,
            SubscribeError::Limit {
                total: 4,
                limit: 3,
                ..
            }
        ));
        assert_eq!(r.desired_len(), 2);
        // re-subscribing held keys does not count against the limit
        r.subscribe(2, &[inst(1), inst(2), inst(3)], Mode::Quote)
            .unwrap();
        r.check_invariants().unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Sub(u64, Vec<u32>, Mode),
        Unsub(u64, Vec<u32>),
        UnsubAll(u64),
        Leave(u64),
        Send,
        Drop,
    }

    fn op() -> impl Strategy<Value = Op> {
        let mode = prop_oneof![Just(Mode::Ltp), Just(Mode::Quote), Just(Mode::Depth)];
        let keys = prop::collection::vec(0u32..12, 0..5);
        prop_oneof![
            4 => (0u64..4, keys.clone(), mode).prop_map(|(c, k, m)| Op::Sub(c, k, m)),
            3 => (0u64..4, keys).prop_map(|(c, k)| Op::Unsub(c, k)),
            1 => (0u64..4).prop_map(Op::UnsubAll),
            1 => (0u64..4).prop_map(Op::Leave),
            2 => Just(Op::Send),
            1 => Just(Op::Drop),
        ]
    }

    proptest! {
        // F29: after any operation sequence each key is in one state, refcounts are > 0,
        // a key leaves desired only when no consumer wants it, and after sending the diff
        // applied == desired (the replay set).
        #[test]
        fn f29_registry_properties(ops in prop::collection::vec(op(), 0..80)) {
            let mut r = Registry::new(8);
            let mut model: HashMap<u64, HashMap<u32, Mode>> = HashMap::new();
            for o in ops {
                match o {
                    Op::Sub(c, ks, m) => {
                        let is: Vec<_> = ks.iter().map(|k| inst(*k)).collect();
                        let before = r.desired_len();
                        let res = r.subscribe(c, &is, m);
                        let union: std::collections::HashSet<u32> = model.values()
                            .flat_map(|m| m.keys().copied()).chain(ks.iter().copied()).collect();
                        if union.len() > 8 {
                            prop_assert!(res.is_err());
                            prop_assert_eq!(r.desired_len(), before);
                        } else {
                            prop_assert!(res.is_ok());
                            let mine = model.entry(c).or_default();
                            for k in ks { mine.insert(k, m); }
                        }
                    }
                    Op::Unsub(c, ks) => {
                        let keys: Vec<_> = ks.iter().map(|k| FeedKey::kite(*k)).collect();
                        r.unsubscribe(c, &keys);
                        if let Some(m) = model.get_mut(&c) { for k in ks { m.remove(&k); } }
                    }
                    Op::UnsubAll(c) => { r.unsubscribe_all(c); if let Some(m) = model.get_mut(&c) { m.clear(); } }
                    Op::Leave(c) => { r.remove_consumer(c); model.remove(&c); }
                    Op::Send => { let d = r.diff(); r.mark_sent(&d); prop_assert!(r.diff().is_empty()); }
                    Op::Drop => { r.clear_applied(); }
                }
                r.check_invariants().map_err(TestCaseError::fail)?;
                // desired == model's union with the max mode
                let mut want: BTreeMap<FeedKey, Mode> = BTreeMap::new();
                for m in model.values() { for (k, mode) in m {
                    let e = want.entry(FeedKey::kite(*k)).or_insert(*mode);
                    if *mode > *e { *e = *mode; }
                } }
                prop_assert_eq!(r.desired_set(), want);
                // replay set (desired groups) == desired
                let replay: BTreeMap<FeedKey, Mode> = r.desired_groups().into_iter()
                    .flat_map(|(m, ks)| ks.into_iter().map(move |k| (k, m))).collect();
                prop_assert_eq!(replay, r.desired_set());
            }
            let d = r.diff(); r.mark_sent(&d);
            let applied: BTreeMap<FeedKey, Mode> = r.applied().iter().map(|(k, m)| (*k, *m)).collect();
            prop_assert_eq!(applied, r.desired_set());
        }
    }
}

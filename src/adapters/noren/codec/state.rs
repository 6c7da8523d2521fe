//! The per-connection Noren decoder: snapshot + delta merging per (exchange, token) and the
//! conversion to normalised ticks.

use super::{Feed, Flavour, NorenFields, NorenMessage, parse_message};
use crate::adapters::kite::codec::change_percent;
use crate::adapters::{CodecError, Decoder, Inbound};
use crate::model::{Depth, FeedKey, Level, Mode, Ohlc, Quote, Tick};
use std::collections::HashMap;

/// Instruments per feed whose snapshot the decoder keeps. Noren documents no scrip limit; this
/// only bounds what a hostile server can make us hold (snapshots beyond it still produce
/// ticks, but their deltas are skipped).
const MAX_SNAPSHOTS: usize = 16_384;

/// IST is UTC+05:30 all year.
const IST_OFFSET: i64 = 19_800;
const DAY: i64 = 86_400;

/// Epoch seconds of an IST time of day (`ltt`), on the IST day of the feed time `ft`, moved by
/// a day when that puts it more than 12 h from `ft` (a trade just before midnight reported
/// just after it).
pub(super) fn ltt_epoch(ft: i64, seconds_of_day: u32) -> i64 {
    let day = ft.saturating_add(IST_OFFSET).div_euclid(DAY);
    let t = day
        .saturating_mul(DAY)
        .saturating_add(i64::from(seconds_of_day))
        .saturating_sub(IST_OFFSET);
    if t > ft.saturating_add(DAY / 2) {
        t.saturating_sub(DAY)
    } else if t <= ft.saturating_sub(DAY / 2) {
        t.saturating_add(DAY)
    } else {
        t
    }
}

/// The tick of a merged snapshot: `Mode::Quote` for the touchline feed, `Mode::Depth` (with the
/// 5 levels) for the depth feed. Absent fields are zero; `change` is computed from `lp` and `c`
/// as for every broker (the wire's rounded `pc` stays in [`NorenFields`]); `exchange_time` is
/// `ft`; `last_trade_time` is `ltt` on the IST day of `ft` (None without both).
pub fn fields_to_tick(key: FeedKey, feed: Feed, f: &NorenFields) -> Tick {
    let px = |p: Option<crate::model::Price>| p.unwrap_or_default();
    let ltp = px(f.ltp);
    let ohlc = Ohlc {
        open: px(f.open),
        high: px(f.high),
        low: px(f.low),
        close: px(f.close),
    };
    let quote = Quote {
        volume: f.volume.unwrap_or(0),
        average_price: px(f.average_price),
        last_quantity: f.last_quantity.unwrap_or(0),
        total_buy_quantity: f.total_buy_quantity.unwrap_or(0),
        total_sell_quantity: f.total_sell_quantity.unwrap_or(0),
        ohlc,
        change: change_percent(ltp, ohlc.close),
        oi: f.oi.unwrap_or(0),
        oi_day_high: 0,
        oi_day_low: 0,
        last_trade_time: f
            .last_trade_time
            .zip(f.feed_time)
            .map(|(ltt, ft)| ltt_epoch(ft, ltt)),
        exchange_time: f.feed_time,
    };
    let depth = (feed == Feed::Depth).then(|| {
        let level = |l: &super::NorenLevel| Level {
            price: px(l.price),
            quantity: l.quantity.unwrap_or(0),
            orders: l.orders.unwrap_or(0),
        };
        Depth {
            buy: f.bids.each_ref().map(level),
            sell: f.asks.each_ref().map(level),
        }
    });
    Tick {
        key,
        mode: if depth.is_some() {
            Mode::Depth
        } else {
            Mode::Quote
        },
        tradable: true,
        ltp,
        quote: Some(quote),
        depth,
    }
}

/// The engine's per-connection Noren decoder: keeps the last snapshot per feed and per
/// (exchange, token) key, merges each delta into it, and emits the merged tick. A delta for a
/// key without a snapshot (lost or never sent) emits nothing and counts as skipped; the data
/// watchdog's re-subscribe brings a new snapshot. Unsubscribe acks drop the snapshots.
#[derive(Debug)]
pub struct NorenDecoder {
    flavour: Flavour,
    touchline: HashMap<FeedKey, NorenFields>,
    depth: HashMap<FeedKey, NorenFields>,
}

impl NorenDecoder {
    /// A decoder for a new connection of this flavour.
    pub fn new(flavour: Flavour) -> NorenDecoder {
        NorenDecoder {
            flavour,
            touchline: HashMap::new(),
            depth: HashMap::new(),
        }
    }

    /// The flavour this decoder classifies connect acks for.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The merged snapshot of a key on a feed, if any.
    pub fn snapshot(&self, feed: Feed, key: FeedKey) -> Option<&NorenFields> {
        self.map(feed).get(&key)
    }

    fn map(&self, feed: Feed) -> &HashMap<FeedKey, NorenFields> {
        match feed {
            Feed::Touchline => &self.touchline,
            Feed::Depth => &self.depth,
        }
    }

    fn map_mut(&mut self, feed: Feed) -> &mut HashMap<FeedKey, NorenFields> {
        match feed {
            Feed::Touchline => &mut self.touchline,
            Feed::Depth => &mut self.depth,
        }
    }

    /// Decode one text message: classify it, merge feed fields, and append at most one tick
    /// to `out`. On error nothing is merged and `out` is unchanged.
    ///
    /// # Errors
    /// As [`parse_message`].
    pub fn decode(&mut self, text: &str, out: &mut Vec<Tick>) -> Result<NorenMessage, CodecError> {
        let msg = parse_message(text, self.flavour)?;
        match &msg {
            NorenMessage::Feed(u) => {
                let map = self.map_mut(u.feed);
                if u.snapshot {
                    out.push(fields_to_tick(u.key, u.feed, &u.fields));
                    if map.len() < MAX_SNAPSHOTS || map.contains_key(&u.key) {
                        map.insert(u.key, u.fields.clone());
                    }
                } else if let Some(state) = map.get_mut(&u.key) {
                    state.merge(&u.fields);
                    out.push(fields_to_tick(u.key, u.feed, state));
                }
            }
            NorenMessage::UnsubscribeAck { feed, keys } => {
                let map = self.map_mut(*feed);
                for k in keys {
                    map.remove(k);
                }
            }
            _ => {}
        }
        Ok(msg)
    }
}

impl Decoder for NorenDecoder {
    fn binary(&mut self, data: &[u8], _out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        Err(CodecError::BadText(format!(
            "Noren sends JSON text only; got a {}-byte binary frame",
            data.len()
        )))
    }

    fn text(&mut self, data: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        let before = out.len();
        Ok(match self.decode(data, out)? {
            NorenMessage::Feed(_) => Inbound::Ticks {
                skipped: usize::from(out.len() == before),
            },
            NorenMessage::Connected { uid } => Inbound::Notice(match uid {
                Some(u) => format!("session accepted for {u}"),
                None => "session accepted".into(),
            }),
            // `Inbound` has no auth variant yet; the text says what happened, and
            // `NorenDecoder::decode` keeps the distinction for the engine.
            NorenMessage::LoginRejected(reason) => {
                Inbound::ServerError(format!("login rejected (Not_Ok): {reason}"))
            }
            NorenMessage::ConnectStatus(s) => Inbound::ServerError(format!(
                "connect acknowledged with status {s:?}, not \"OK\""
            )),
            NorenMessage::Heartbeat => Inbound::Heartbeat,
            NorenMessage::UnsubscribeAck { .. }
            | NorenMessage::OrderSubscribeAck
            | NorenMessage::OrderUnsubscribeAck
            | NorenMessage::OrderUpdate(_)
            | NorenMessage::Other(_) => Inbound::Ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ltt_lands_on_the_feed_day_in_ist() {
        // 2024-01-05 10:50:04 IST = 1704432004.
        assert_eq!(
            ltt_epoch(1_704_432_004, 10 * 3600 + 50 * 60 + 1),
            1_704_432_001
        );
        // Feed just after IST midnight, trade just before it: the previous day.
        let midnight = 1_704_479_400; // 2024-01-06 00:00:00 IST
        assert_eq!(ltt_epoch(midnight + 5, 86_399), midnight - 1);
        // Feed just before midnight, ltt just after (clock skew): the next day.
        assert_eq!(ltt_epoch(midnight - 5, 2), midnight + 2);
        // Extremes saturate instead of overflowing.
        let _ = ltt_epoch(i64::MAX, 86_399);
        let _ = ltt_epoch(i64::MIN, 0);
    }
}

//! NorenOMS (Shoonya at `/NorenWSTP/`, Flattrade at `/PiConnectWSAPI/`): no HTTP auth; the
//! first text message logs in (`t:"c"` + `susertoken`, or `t:"a"` + `accesstoken`), answered
//! `{"t":"ck","s":"OK","uid":..}` — `ak` on the Flattrade path for `t:"a"`, the Flattrade
//! documentation's name, which the Flattrade client (0.0.29) accepts; `ck` everywhere else, the
//! only ack the classic and OAuth (0.0.37) builds accept — or `Not_Ok` "Invalid Session Key"
//! and a close. Before the login everything else is ignored.
//!
//! Subscribe `t`/`d` → one `tk`/`dk` full snapshot per scrip (every subscribe, duplicates
//! included, brings a fresh one), then sparse `tf`/`df` deltas with only the fields that
//! changed (all values strings; a step that changed nothing sends nothing). `u`/`ud` → `uk`/
//! `udk` naming the keys, `o`/`uo` → `ok`/`uok`, `{"t":"h"}` ignored; pings are answered by the
//! WebSocket layer. There is no server heartbeat. A snapshot is a tick: unknown, rejected,
//! quiet and ignored (IgnoreSubscriptions) scrips get none, and under HeartbeatsOnly it is
//! owed until data flows again.

use super::{Cx, Effect, MAX_SUBSCRIPTIONS, Protocol, SubKey, Ticked};
use crate::adapters::noren::codec::{
    self as noren, Ack, Feed, FeedUpdate, NorenFields, NorenRequest, TokenKind,
};
use crate::model::{FeedKey, Mode, Price, Tick};
use crate::secret::Secret;
use crate::sim::instruments::Family;
use crate::sim::{SimBroker, lock, market, masters};
use std::collections::{HashMap, HashSet};
use tokio_tungstenite::tungstenite::Message;

const TOUCHLINE: u8 = 1;
const DEPTH: u8 = 2;
/// The reason a login is refused (the vectors' `connect_fail`).
pub(crate) const INVALID_SESSION: &str = "Invalid Session Key";

/// The Noren half of a connection.
pub(crate) struct Noren {
    broker: SimBroker,
    logged_in: bool,
    /// Fields last sent per subscription (what the client has merged); absent = the next
    /// tick is a snapshot.
    prev: HashMap<SubKey, NorenFields>,
}

fn variant_of(feed: Feed) -> u8 {
    match feed {
        Feed::Touchline => TOUCHLINE,
        Feed::Depth => DEPTH,
    }
}

fn feed_of(variant: u8) -> Feed {
    if variant == DEPTH {
        Feed::Depth
    } else {
        Feed::Touchline
    }
}

/// What a server sends for `t` on `feed`. Touchline carries the best bid / ask (`bp1`, `sp1`,
/// `bq1`, `sq1`) like the real feed: at the LTP and one tick above, quantities derived from
/// the volume (no draw from the walk's generator).
fn fields(cx: &Cx<'_>, t: &Tick, market: u32, feed: Feed, snapshot: bool) -> NorenFields {
    let mut f = NorenFields::from_tick(t, snapshot);
    let p = cx.shared.instruments.params(market);
    if feed == Feed::Touchline && t.tradable {
        if let (Some(p), Some(q)) = (p, t.quote) {
            let lot = u64::from(p.lot);
            let lots = q.volume / lot.max(1);
            f.bids[0].price = Some(t.ltp);
            f.asks[0].price = Some(Price(t.ltp.0 + p.tick));
            f.bids[0].quantity = Some(lot * (1 + lots % 40));
            f.asks[0].quantity = Some(lot * (1 + lots / 3 % 40));
        }
    }
    if let (Feed::Depth, Some(p)) = (feed, p) {
        // Depth carries the circuit limits (tradable instruments) and the 52-week range, as
        // GetQuotes does; they never change, so only `dk` snapshots show them.
        if let (true, Some(q)) = (t.tradable, t.quote) {
            let (lc, uc) = market::circuits(q.ohlc.close, p.tick);
            f.lower_circuit = Some(lc);
            f.upper_circuit = Some(uc);
        }
        let (low, high) = market::week52(&p);
        f.low_52 = Some(low);
        f.high_52 = Some(high);
    }
    if snapshot {
        let ins = &cx.shared.instruments;
        f.symbol = Some(masters::symbol_of(ins, market, false));
        if let Some(p) = p {
            f.tick_size = Some(Price(p.tick));
            f.lot_size = Some(u64::from(p.lot));
        }
    }
    f
}

fn update(feed: Feed, snapshot: bool, key: FeedKey, fields: NorenFields) -> Option<Message> {
    let u = FeedUpdate {
        feed,
        snapshot,
        key,
        fields,
    };
    noren::encode_update(&u).ok().map(Message::text)
}

impl Noren {
    /// A connection on Shoonya's or Flattrade's path.
    pub(crate) fn new(broker: SimBroker) -> Noren {
        Noren {
            broker,
            logged_in: false,
            prev: HashMap::new(),
        }
    }

    fn login(&mut self, cx: &mut Cx<'_>, kind: TokenKind, uid: &str, token: &Secret) -> Effect {
        let ack = if self.broker == SimBroker::Flattrade && kind == TokenKind::AccessToken {
            Ack::Ak
        } else {
            Ack::Ck
        };
        let ok = !cx.flags.reject403
            && uid == cx.shared.client_code
            && token.expose() == cx.shared.access_token;
        if !ok {
            cx.shared.count_rejected_auth();
            cx.out.push(Message::text(noren::encode_connect_rejected(
                ack,
                INVALID_SESSION,
            )));
            return Effect::Close(1000, INVALID_SESSION);
        }
        self.logged_in = true;
        cx.out
            .push(Message::text(noren::encode_connect_ack(ack, uid)));
        Effect::LoggedIn
    }

    /// A fresh snapshot for one scrip, now (one step of its walk).
    fn snapshot(&mut self, cx: &mut Cx<'_>, sk: SubKey, market: u32, mode: Mode) {
        let tick = {
            let mut m = lock(&cx.shared.market);
            let Some(st) = m.state(&cx.shared.instruments, market) else {
                return;
            };
            st.step();
            let mut t = st.tick(mode, super::super::now_secs());
            t.key = sk.key;
            t
        };
        let feed = feed_of(sk.variant);
        let f = fields(cx, &tick, market, feed, true);
        if let Some(m) = update(feed, true, sk.key, f) {
            cx.out.push(m);
            self.prev.insert(sk, fields(cx, &tick, market, feed, false));
        }
    }

    fn subscribe(&mut self, cx: &mut Cx<'_>, feed: Feed, keys: &[FeedKey]) {
        let variant = variant_of(feed);
        let mode = if feed == Feed::Depth {
            Mode::Depth
        } else {
            Mode::Quote
        };
        cx.report.subscribe_messages += 1;
        cx.report.tokens += keys.len() as u64;
        let mut seen = HashSet::new();
        let (mut dups, mut over) = (0u64, 0usize);
        for &key in keys {
            let sk = SubKey { key, variant };
            if !seen.insert(key) {
                dups += 1;
                continue;
            }
            let market = cx.shared.instruments.market_token(Family::Noren, key);
            if cx.flags.rejects(key.token, market) {
                continue;
            }
            if cx.subs.len() >= MAX_SUBSCRIPTIONS && !cx.subs.contains(sk) {
                over += 1;
                continue;
            }
            let tickable = !cx.flags.ignore_subscriptions;
            if cx.subs.upsert(sk, Some(mode), mode, market, tickable) {
                dups += 1;
            }
            self.prev.remove(&sk);
            // A snapshot is a tick: none for quiet or ignored scrips, none while only
            // heartbeats flow (the first tick after that is the snapshot).
            let f = cx.flags;
            let silent = |m: u32| f.silenced(m) || (key.token != m && f.silenced(key.token));
            if let Some(m) = market.filter(|m| tickable && !silent(*m) && !f.heartbeats_only) {
                self.snapshot(cx, sk, m, mode);
            }
        }
        cx.report.duplicates += dups;
        if over > 0 {
            tracing::debug!(
                conn = cx.conn,
                over,
                "simulator: Noren scrips beyond {MAX_SUBSCRIPTIONS} ignored"
            );
        }
    }

    fn unsubscribe(&mut self, cx: &mut Cx<'_>, feed: Feed, keys: &[FeedKey]) {
        let variant = variant_of(feed);
        for &key in keys {
            let sk = SubKey { key, variant };
            cx.subs.remove(sk);
            self.prev.remove(&sk);
        }
        if let Ok(ack) = noren::encode_unsubscribe_ack(feed, keys) {
            cx.out.push(Message::text(ack));
        }
    }
}

impl Protocol for Noren {
    fn on_text(&mut self, cx: &mut Cx<'_>, text: &str) -> Effect {
        let req = match noren::decode_request(text) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(conn = cx.conn, error = %e, "simulator: bad Noren request ignored");
                return Effect::None;
            }
        };
        match req {
            NorenRequest::Login {
                kind, uid, token, ..
            } => self.login(cx, kind, &uid, &token),
            _ if !self.logged_in => {
                tracing::debug!(
                    conn = cx.conn,
                    "simulator: Noren request before login ignored"
                );
                Effect::None
            }
            NorenRequest::Subscribe { feed, keys } => {
                self.subscribe(cx, feed, &keys);
                Effect::Subscribed
            }
            NorenRequest::Unsubscribe { feed, keys } => {
                self.unsubscribe(cx, feed, &keys);
                Effect::None
            }
            NorenRequest::OrderSubscribe { .. } => {
                cx.out.push(Message::text(r#"{"t":"ok"}"#));
                Effect::None
            }
            NorenRequest::OrderUnsubscribe => {
                cx.out.push(Message::text(r#"{"t":"uok"}"#));
                Effect::None
            }
            NorenRequest::Heartbeat => Effect::None,
        }
    }

    fn encode(&mut self, cx: &mut Cx<'_>, ticks: &[Ticked]) -> u64 {
        let mut sent = 0;
        for t in ticks {
            let feed = feed_of(t.sk.variant);
            let now = fields(cx, &t.tick, t.market, feed, false);
            let msg = match self.prev.get_mut(&t.sk) {
                Some(prev) => {
                    let delta = now.diff(prev);
                    *prev = now;
                    if delta == NorenFields::default() {
                        continue;
                    }
                    update(feed, false, t.sk.key, delta)
                }
                None => {
                    let snap = fields(cx, &t.tick, t.market, feed, true);
                    self.prev.insert(t.sk, now);
                    update(feed, true, t.sk.key, snap)
                }
            };
            if let Some(m) = msg {
                cx.out.push(m);
                sent += 1;
            }
        }
        sent
    }

    fn malformed(&mut self, kind: u32, key: FeedKey) -> Message {
        let (e, tk) = (noren::exchange_of(key.seg).unwrap_or("NSE"), key.token);
        Message::text(match kind % MALFORMED_KINDS {
            0 => format!(r#"{{"t":"tf","e":"{e}","tk":"{tk}","lp":"10"#),
            1 => format!(r#"{{"t":"tf","e":"{e}","tk":"{tk}","lp":1562.5}}"#),
            2 => format!(r#"{{"t":"tf","e":"{e}","tk":"{tk}","lp":"abc"}}"#),
            3 => format!(r#"{{"t":"tf","e":"XYZ","tk":"{tk}","lp":"1.00"}}"#),
            _ => "[1,2,3]".to_string(),
        })
    }

    fn malformed_kinds(&self) -> u32 {
        MALFORMED_KINDS
    }
}

/// Number of distinct malformed Noren messages: truncated JSON, a number where a string
/// belongs, a price that is not a number, an unknown exchange, a JSON array.
const MALFORMED_KINDS: u32 = 5;

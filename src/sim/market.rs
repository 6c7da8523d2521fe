//! Seeded market model: one bounded random walk per instrument, stepping in tick-size
//! increments around the instrument's base price, with consistent day OHLC, volume, VWAP,
//! totals, open interest (derivatives) and a 5-level book around the LTP.

use super::instruments::{Instruments, Params};
use crate::adapters::kite::codec::divisor;
use crate::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// Volume at which a "new trading day" starts, keeping every field inside Kite's int32.
const DAY_VOLUME_LIMIT: u64 = 1_500_000_000;
/// Upper bound for total buy/sell quantities (int32 on the wire).
const MAX_TOTAL_QTY: i64 = 1_000_000_000;

/// Current state of every instrument that has ticked, keyed by token.
pub struct Market {
    seed: u64,
    states: HashMap<u32, InstrState>,
}

impl Market {
    /// An empty market; instrument walks start lazily on first use.
    pub fn new(seed: u64) -> Market {
        Market {
            seed,
            states: HashMap::new(),
        }
    }

    /// The state of `token`, created from the instrument master on first use; `None` for
    /// tokens the master does not know.
    pub(crate) fn state(
        &mut self,
        instruments: &Instruments,
        token: u32,
    ) -> Option<&mut InstrState> {
        use std::collections::hash_map::Entry;
        match self.states.entry(token) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(v) => {
                let p = instruments.params(token)?;
                Some(v.insert(InstrState::new(p, self.seed)))
            }
        }
    }
}

/// One instrument's walk. All prices in [`Price`] units.
pub struct InstrState {
    p: Params,
    rng: SmallRng,
    raw_unit: i64,
    ltp: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: u64,
    turnover: i128,
    last_qty: u64,
    buy_total: i64,
    sell_total: i64,
    oi: u64,
    oi_high: u64,
    oi_low: u64,
}

impl InstrState {
    /// Start a walk: the seed and token fully determine the path.
    pub fn new(p: Params, seed: u64) -> InstrState {
        let mut rng =
            SmallRng::seed_from_u64(seed ^ (p.token as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let lot = p.lot as u64;
        let open = (p.base + rng.random_range(-10i64..=10) * p.tick).max(p.tick);
        let (volume, oi) = (
            if p.index {
                0
            } else {
                lot * rng.random_range(100..5_000)
            },
            if p.derivative {
                lot * rng.random_range(1_000..50_000)
            } else {
                0
            },
        );
        let totals = (lot as i64 * 1_000).min(MAX_TOTAL_QTY);
        InstrState {
            // Wire resolution of this segment, so VWAP survives encoding exactly.
            raw_unit: Price::SCALE / divisor((p.token & 0xff) as u16),
            rng,
            ltp: open,
            open,
            high: open,
            low: open,
            close: p.base,
            volume,
            turnover: open as i128 * volume as i128,
            last_qty: lot,
            buy_total: totals,
            sell_total: totals,
            oi,
            oi_high: oi,
            oi_low: oi,
            p,
        }
    }

    /// Advance one trade: move the LTP by a few ticks (pulled back inside ~±8% of the base).
    pub fn step(&mut self) {
        let p = self.p;
        let band = (p.base / 12).max(p.tick * 20);
        let dev = self.ltp - p.base;
        let pull = if dev > band {
            -1
        } else if dev < -band {
            1
        } else {
            0
        };
        let k = self.rng.random_range(-2i64..=2) + pull;
        self.ltp = (self.ltp + k * p.tick).max(p.tick);
        self.high = self.high.max(self.ltp);
        self.low = self.low.min(self.ltp);
        if p.index {
            return;
        }
        let lot = p.lot as u64;
        let qty = lot * self.rng.random_range(1..=20u64);
        if self.volume + qty > DAY_VOLUME_LIMIT {
            self.new_day();
        }
        self.last_qty = qty;
        self.volume += qty;
        self.turnover += self.ltp as i128 * qty as i128;
        let lot = lot as i64;
        let floor = (lot * 100).min(MAX_TOTAL_QTY);
        self.buy_total =
            (self.buy_total + lot * self.rng.random_range(-20i64..=20)).clamp(floor, MAX_TOTAL_QTY);
        self.sell_total = (self.sell_total + lot * self.rng.random_range(-20i64..=20))
            .clamp(floor, MAX_TOTAL_QTY);
        if p.derivative {
            let d = lot * self.rng.random_range(-5i64..=5);
            self.oi = (self.oi as i64 + d).clamp(lot, MAX_TOTAL_QTY) as u64;
            self.oi_high = self.oi_high.max(self.oi);
            self.oi_low = self.oi_low.min(self.oi);
        }
    }

    fn new_day(&mut self) {
        self.close = self.ltp;
        self.open = self.ltp;
        self.high = self.ltp;
        self.low = self.ltp;
        self.volume = 0;
        self.turnover = 0;
        self.oi_high = self.oi;
        self.oi_low = self.oi;
    }

    fn round_raw(&self, units: i64) -> i64 {
        (units + self.raw_unit / 2) / self.raw_unit * self.raw_unit
    }

    /// Current tick in `mode` (LTP / quote / full), timestamps = `now` (Unix seconds).
    pub fn tick(&mut self, mode: Mode, now: i64) -> Tick {
        let tradable = !self.p.index;
        let quote = (mode >= Mode::Quote).then(|| self.quote(now));
        let depth = (mode == Mode::Depth && tradable).then(|| self.depth());
        Tick {
            key: FeedKey::kite(self.p.token),
            mode,
            tradable,
            ltp: Price(self.ltp),
            quote,
            depth,
        }
    }

    fn quote(&self, now: i64) -> Quote {
        let avg = if self.volume > 0 {
            self.round_raw((self.turnover / self.volume as i128) as i64)
        } else {
            0
        };
        let change = if self.close != 0 {
            (self.ltp - self.close) as f64 * 100.0 / self.close as f64
        } else {
            0.0
        };
        Quote {
            volume: self.volume,
            average_price: Price(avg),
            last_quantity: if self.p.index { 0 } else { self.last_qty },
            total_buy_quantity: if self.p.index {
                0
            } else {
                self.buy_total as u64
            },
            total_sell_quantity: if self.p.index {
                0
            } else {
                self.sell_total as u64
            },
            ohlc: Ohlc {
                open: Price(self.open),
                high: Price(self.high),
                low: Price(self.low),
                close: Price(self.close),
            },
            change,
            oi: self.oi,
            oi_day_high: self.oi_high,
            oi_day_low: self.oi_low,
            last_trade_time: Some(now),
            exchange_time: Some(now),
        }
    }

    fn depth(&mut self) -> Depth {
        let (tick, lot) = (self.p.tick, self.p.lot as u64);
        let mut d = Depth::default();
        for i in 0..5 {
            // Best bid at the LTP, best ask one tick above: a one-tick spread.
            let bid = self.ltp - tick * i as i64;
            d.buy[i] = Level {
                price: Price(if bid > 0 { bid } else { 0 }),
                quantity: if bid > 0 {
                    lot * self.rng.random_range(1..=50u64)
                } else {
                    0
                },
                orders: if bid > 0 {
                    self.rng.random_range(1..=30u32)
                } else {
                    0
                },
            };
            d.sell[i] = Level {
                price: Price(self.ltp + tick * (i as i64 + 1)),
                quantity: lot * self.rng.random_range(1..=50u64),
                orders: self.rng.random_range(1..=30u32),
            };
        }
        d
    }

    /// Circuit limits for REST quotes: ±10% of the previous close, on the tick grid.
    pub fn circuits(&self) -> (Price, Price) {
        circuits(Price(self.close), self.p.tick)
    }

    /// The 52-week range ([`week52`] of this instrument).
    pub fn week52(&self) -> (Price, Price) {
        week52(&self.p)
    }
}

/// Circuit limits (lower, upper): ±10% of the previous close `close`, on the `tick` grid (in
/// [`Price`] units). What REST quotes, Angel SnapQuote packets and Noren depth messages carry.
pub(crate) fn circuits(close: Price, tick: i64) -> (Price, Price) {
    let (t, c) = (tick.max(1), close.0);
    let band = c / 10 / t * t;
    (Price((c - band).max(t)), Price(c + band))
}

/// The 52-week range (low, high): ±12.5% of the base price on the tick grid, wider than
/// anywhere [`InstrState::step`]'s walk (pulled back inside ~±8% of the base) goes, so every
/// day's high and low lie inside it.
pub(crate) fn week52(p: &Params) -> (Price, Price) {
    let t = p.tick.max(1);
    let band = (p.base / 8).max(t * 40) / t * t;
    (Price((p.base - band).max(t)), Price(p.base + band))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(token: u32, base_rupees: i64, tick: i64) -> Params {
        Params {
            token,
            base: base_rupees * Price::SCALE,
            tick,
            lot: 75,
            index: token & 0xff == 9,
            derivative: token & 0xff == 2,
        }
    }

    #[test]
    fn walk_is_seeded_on_tick_grid_and_consistent() {
        let p = params(9729794, 880, 500_000);
        let (mut a, mut b) = (InstrState::new(p, 7), InstrState::new(p, 7));
        let mut last_vol = 0;
        for _ in 0..10_000 {
            a.step();
            b.step();
            let t = a.tick(Mode::Depth, 1_700_000_000);
            assert_eq!(t, b.tick(Mode::Depth, 1_700_000_000));
            assert_eq!(t.ltp.0 % p.tick, 0);
            let q = t.quote.unwrap();
            assert!(q.ohlc.low <= t.ltp && t.ltp <= q.ohlc.high);
            assert!(q.volume >= last_vol && q.volume < (1 << 31));
            last_vol = q.volume;
            let d = t.depth.unwrap();
            assert!(d.buy[0].price <= t.ltp && d.sell[0].price > t.ltp);
            assert!(
                (t.ltp.0 - p.base).abs() <= p.base / 5,
                "walk stays near base"
            );
        }
        assert_ne!(InstrState::new(p, 8).tick(Mode::Ltp, 0).ltp, Price(0));
    }

    #[test]
    fn index_has_no_depth_or_volume() {
        let mut s = InstrState::new(params(256265, 26480, 500_000), 1);
        s.step();
        let t = s.tick(Mode::Depth, 5);
        assert!(!t.tradable && t.depth.is_none());
        assert_eq!(t.quote.unwrap().volume, 0);
    }
}

//! OpenAlgo upstream codec throughput: 100 `market_data` messages per iteration (as tickmux's
//! proxy writes them) decoded into ticks, for each mode. Throughput is in messages = ticks;
//! time per iteration / 100 = ns per tick.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickmux::adapters::Adapter;
use tickmux::adapters::openalgo::OpenAlgo;
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};
use tickmux::proxy::market_data::market_data;
use tickmux::proxy::protocol::SymbolRef;

const MESSAGES: usize = 100;

fn tick(mode: Mode, i: i64) -> Tick {
    let p = |paise: i64| Price::from_raw(paise, 100);
    let level = |k: i64| Level {
        price: p(152_340 + k * 5),
        quantity: (10 + k * 7) as u64,
        orders: (1 + k) as u32,
    };
    Tick {
        key: FeedKey::kite(408065),
        mode,
        tradable: true,
        ltp: p(152_345 + i * 5),
        quote: Some(Quote {
            volume: 1_234_567 + i as u64,
            average_price: p(151_250),
            last_quantity: 7,
            total_buy_quantity: 50_000,
            total_sell_quantity: 61_000,
            ohlc: Ohlc {
                open: p(150_000),
                high: p(153_000),
                low: p(149_000),
                close: p(151_000),
            },
            change: 0.89,
            last_trade_time: Some(1_755_840_000),
            ..Quote::default()
        }),
        depth: Some(Depth {
            buy: [0, 1, 2, 3, 4].map(|k| level(-k)),
            sell: [1, 2, 3, 4, 5].map(level),
        }),
    }
}

fn bench(c: &mut Criterion) {
    let a = OpenAlgo::default();
    let names: Vec<SymbolRef> = (0..MESSAGES)
        .map(|i| SymbolRef {
            symbol: format!("SYM{i}"),
            exchange: "NSE".into(),
        })
        .collect();
    for s in &names {
        a.unlisted(&s.exchange, &s.symbol);
    }
    let mut g = c.benchmark_group("openalgo_decode");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for (label, mode) in [
        ("ltp", Mode::Ltp),
        ("quote", Mode::Quote),
        ("depth", Mode::Depth),
    ] {
        let msgs: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, s)| market_data(s, mode, &tick(mode, i as i64), "kite", 0).unwrap())
            .collect();
        let mut d = a.decoder();
        let mut out = Vec::with_capacity(MESSAGES);
        g.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                for m in &msgs {
                    let _ = black_box(d.text(black_box(m), &mut out));
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

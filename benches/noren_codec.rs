//! Noren codec throughput: the per-connection decoder on 100 JSON messages of each kind (tk
//! snapshot, tf delta, dk snapshot, df delta), each for a different token. Throughput is in
//! elements = messages (one tick each), so criterion prints ticks/s; time per iteration / 100
//! = ns per tick.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickmux::adapters::Decoder;
use tickmux::adapters::kite::codec::change_percent;
use tickmux::adapters::noren::codec::{Flavour, NorenDecoder, encode_delta, encode_snapshot};
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};

const MESSAGES: usize = 100;

/// A realistic NSE tick in `mode` for token `22 + i`, its LTP, volume and time moved by `step`.
fn tick(i: usize, mode: Mode, step: i64) -> Tick {
    let p = |paise: i64| Price::from_raw(paise, 100);
    let ltp = p(200_145 + step * 5);
    let ohlc = Ohlc {
        open: p(199_500),
        high: p(201_000),
        low: p(199_010),
        close: p(199_110),
    };
    let level = |k: i64| Level {
        price: p(200_140 + k * 5),
        quantity: (4 + k * 60) as u64,
        orders: (1 + k) as u32,
    };
    Tick {
        key: FeedKey {
            seg: 1,
            token: 22 + i as u32,
        },
        mode,
        tradable: true,
        ltp,
        quote: Some(Quote {
            volume: 162_220 + step as u64 * 17,
            average_price: p(200_112),
            last_quantity: if mode == Mode::Depth { 5 } else { 0 },
            total_buy_quantity: if mode == Mode::Depth { 120_952 } else { 0 },
            total_sell_quantity: if mode == Mode::Depth { 131_730 } else { 0 },
            ohlc,
            change: change_percent(ltp, ohlc.close),
            last_trade_time: (mode == Mode::Depth).then_some(1_704_432_001),
            exchange_time: Some(1_704_432_004 + step),
            ..Quote::default()
        }),
        depth: (mode == Mode::Depth).then(|| Depth {
            buy: [0, 1, 2, 3, 4].map(|k| level(-k)),
            sell: [1, 2, 3, 4, 5].map(level),
        }),
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("noren_decode");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, mode, delta) in [
        ("tk", Mode::Quote, false),
        ("tf_delta", Mode::Quote, true),
        ("dk", Mode::Depth, false),
        ("df_delta", Mode::Depth, true),
    ] {
        let snaps: Vec<String> = (0..MESSAGES)
            .map(|i| encode_snapshot(&tick(i, mode, 0)).unwrap())
            .collect();
        // Deltas: LTP, volume, feed time (and, for depth, whatever those move) changed.
        let msgs: Vec<String> = if delta {
            (0..MESSAGES)
                .map(|i| encode_delta(&tick(i, mode, 0), &tick(i, mode, 1)).unwrap())
                .collect()
        } else {
            snaps.clone()
        };
        let mut d = NorenDecoder::new(Flavour::Classic);
        let mut out = Vec::with_capacity(MESSAGES);
        for s in &snaps {
            d.text(s, &mut out).unwrap();
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for m in &msgs {
                    d.text(black_box(m), &mut out).unwrap();
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("noren_encode");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    let prev: Vec<Tick> = (0..MESSAGES).map(|i| tick(i, Mode::Depth, 0)).collect();
    let next: Vec<Tick> = (0..MESSAGES).map(|i| tick(i, Mode::Depth, 1)).collect();
    g.bench_function("dk", |b| {
        b.iter(|| {
            for t in &prev {
                black_box(encode_snapshot(black_box(t)).unwrap());
            }
        })
    });
    g.bench_function("df_delta", |b| {
        b.iter(|| {
            for (p, n) in prev.iter().zip(&next) {
                black_box(encode_delta(black_box(p), n).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);

//! Kite codec throughput: decoding frames of 100 LTP, quote and full packets. Throughput is in
//! elements = packets, so criterion prints packets/s; time per iteration / 100 = ns per packet.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickmux::adapters::kite::codec::{change_percent, decode_frame, encode_frame};
use tickmux::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};

const PACKETS: usize = 100;

/// A realistic NSE tick in `mode`, varied per index so no two packets are identical.
fn tick(i: usize, mode: Mode) -> Tick {
    let p = |raw: i64| Price::from_raw(raw, 100);
    let i = i as i64;
    let ltp = p(157_315 + i);
    let ohlc = Ohlc {
        open: p(156_915),
        high: p(157_500 + i),
        low: p(156_105),
        close: p(156_780),
    };
    let level = |k: i64| Level {
        price: p(157_300 + k * 5),
        quantity: (100 + k * 7) as u64,
        orders: (1 + k) as u32,
    };
    Tick {
        key: FeedKey::kite(408_065 + ((i as u32) << 8)),
        mode,
        tradable: true,
        ltp,
        quote: (mode != Mode::Ltp).then(|| Quote {
            volume: 1_175_986 + i as u64,
            average_price: p(157_033),
            last_quantity: 1,
            total_buy_quantity: 256_511,
            total_sell_quantity: 360_503,
            ohlc,
            change: change_percent(ltp, ohlc.close),
            oi: 0,
            oi_day_high: 0,
            oi_day_low: 0,
            last_trade_time: (mode == Mode::Depth).then_some(1_625_461_887),
            exchange_time: (mode == Mode::Depth).then_some(1_625_461_887),
        }),
        depth: (mode == Mode::Depth).then(|| Depth {
            buy: [0, 1, 2, 3, 4].map(|k| level(-k)),
            sell: [1, 2, 3, 4, 5].map(level),
        }),
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("kite_decode");
    g.throughput(Throughput::Elements(PACKETS as u64));
    for (name, mode) in [
        ("ltp", Mode::Ltp),
        ("quote", Mode::Quote),
        ("full", Mode::Depth),
    ] {
        let ticks: Vec<Tick> = (0..PACKETS).map(|i| tick(i, mode)).collect();
        let mut frame = Vec::new();
        encode_frame(&ticks, &mut frame);
        // Reused output vector: the engine keeps one per connection, so no allocation here.
        let mut out = Vec::with_capacity(PACKETS);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let info = decode_frame(black_box(&frame), &mut out).unwrap();
                black_box(&out);
                info
            })
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("kite_encode");
    g.throughput(Throughput::Elements(PACKETS as u64));
    let ticks: Vec<Tick> = (0..PACKETS).map(|i| tick(i, Mode::Depth)).collect();
    let mut buf = Vec::with_capacity(PACKETS * 190);
    g.bench_function("full", |b| {
        b.iter(|| {
            buf.clear();
            encode_frame(black_box(&ticks), &mut buf);
            black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);

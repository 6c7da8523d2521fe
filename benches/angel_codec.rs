//! Angel codec throughput: decoding 100 binary messages (one packet each, as SmartAPI sends
//! them) of each mode, with the pure codec (packet + tick) and through the engine's decoder. Throughput is in elements = packets, so criterion prints packets/s;
//! time per iteration / 100 = ns per packet.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickmux::adapters::Decoder;
use tickmux::adapters::angel::codec::{
    AngelDecoder, AngelMode, AngelPacket, decode_packet_into, encode_packet, encode_tick,
};
use tickmux::adapters::kite::codec::change_percent;
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
        key: FeedKey {
            seg: 1,
            token: 1594 + i as u32,
        },
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
            last_trade_time: (mode == Mode::Depth).then_some(1_704_432_004),
            exchange_time: Some(1_704_432_005),
            ..Quote::default()
        }),
        depth: (mode == Mode::Depth).then(|| Depth {
            buy: [0, 1, 2, 3, 4].map(|k| level(-k)),
            sell: [1, 2, 3, 4, 5].map(level),
        }),
    }
}

fn frames(mode: AngelMode) -> Vec<Vec<u8>> {
    (0..PACKETS)
        .map(|i| {
            let mut f = Vec::new();
            if mode == AngelMode::Depth20 {
                let t = tick(i, Mode::Depth);
                encode_packet(&AngelPacket::from_tick(&t, mode), &mut f);
            } else {
                let m = [Mode::Ltp, Mode::Quote, Mode::Depth][mode as usize - 1];
                encode_tick(&tick(i, m), &mut f);
            }
            f
        })
        .collect()
}

const MODES: [(&str, AngelMode); 4] = [
    ("ltp", AngelMode::Ltp),
    ("quote", AngelMode::Quote),
    ("snapquote", AngelMode::SnapQuote),
    ("depth20", AngelMode::Depth20),
];

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("angel_decode");
    g.throughput(Throughput::Elements(PACKETS as u64));
    for (name, mode) in MODES {
        let frames = frames(mode);
        // One packet reused, as the decoder does.
        let mut p = AngelPacket::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                for f in &frames {
                    decode_packet_into(black_box(f), &mut p).unwrap();
                    black_box(p.to_tick().unwrap());
                }
            })
        });
    }
    g.finish();
}

/// The engine's path: the per-connection decoder (with its Depth-20 fill state) through the
/// `Decoder` trait into a reused output vector.
fn bench_decoder(c: &mut Criterion) {
    let mut g = c.benchmark_group("angel_decoder");
    g.throughput(Throughput::Elements(PACKETS as u64));
    for (name, mode) in MODES {
        let mut d = AngelDecoder::new();
        // Quotes first, so Depth-20 ticks are filled as in a real session.
        let mut out = Vec::with_capacity(PACKETS);
        for f in frames(AngelMode::Quote) {
            d.binary(&f, &mut out).unwrap();
        }
        let frames = frames(mode);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for f in &frames {
                    d.binary(black_box(f), &mut out).unwrap();
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("angel_encode");
    g.throughput(Throughput::Elements(PACKETS as u64));
    let ticks: Vec<Tick> = (0..PACKETS).map(|i| tick(i, Mode::Depth)).collect();
    let mut buf = Vec::with_capacity(PACKETS * 400);
    g.bench_function("snapquote", |b| {
        b.iter(|| {
            buf.clear();
            for t in &ticks {
                encode_tick(black_box(t), &mut buf);
            }
            black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_decoder, bench_encode);
criterion_main!(benches);

//! Fuzz the Kite codec's network-facing decoders: binary frames, server text, client requests.
//! Run with `cargo +nightly fuzz run kite_decode` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickmux::adapters::kite::codec::{decode_frame, decode_request, decode_text};
use tickmux::model::{FeedKey, Price, Tick};

fuzz_target!(|data: &[u8]| {
    // Pre-filled output: on error decode_frame must leave it exactly as it was.
    let before = vec![Tick::ltp(FeedKey::kite(1), Price(7))];
    let mut out = before.clone();
    match decode_frame(data, &mut out) {
        Ok(info) => {
            assert_eq!(out.len(), before.len() + info.packets);
            assert_eq!(out[0], before[0]);
        }
        Err(_) => assert_eq!(out, before),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_text(s);
        let _ = decode_request(s);
    }
});

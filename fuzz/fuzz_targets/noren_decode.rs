//! Fuzz the Noren codec's network-facing decoders: server messages (stateless and through the
//! merging per-connection decoder, fed the same input twice so deltas meet a snapshot), client
//! requests, and binary frames (always an error).
//! Run with `cargo +nightly fuzz run noren_decode` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickmux::adapters::Decoder;
use tickmux::adapters::noren::codec::{Flavour, NorenDecoder, decode_request, parse_message};

fuzz_target!(|data: &[u8]| {
    let mut d = NorenDecoder::new(Flavour::Flattrade);
    assert!(d.binary(data, &mut Vec::new()).is_err());
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_message(s, Flavour::Classic);
    let _ = decode_request(s);
    for _ in 0..2 {
        let mut out = Vec::new();
        match d.text(s, &mut out) {
            Ok(_) => assert!(out.len() <= 1),
            Err(_) => assert!(out.is_empty()),
        }
    }
    // Turn a delta into a snapshot and back, so the merge path sees this input's fields.
    let snap = s
        .replacen("\"tf\"", "\"tk\"", 1)
        .replacen("\"df\"", "\"dk\"", 1);
    let _ = d.text(&snap, &mut Vec::new());
    let _ = d.text(s, &mut Vec::new());
});

//! Fuzz the Angel codec's network-facing decoders: binary packets (stateless and through the
//! per-connection decoder), server text, client requests.
//! Run with `cargo +nightly fuzz run angel_decode` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickmux::adapters::Decoder;
use tickmux::adapters::angel::codec::{
    AngelDecoder, decode_packet, decode_request, decode_text, encode_packet,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decode_packet(data) {
        // A packet re-encodes to its mode's length and decodes to the same fields.
        let mut enc = Vec::new();
        encode_packet(&p, &mut enc);
        assert_eq!(enc.len(), p.subscription_mode.packet_len());
        let again = decode_packet(&enc).expect("re-encoded packet decodes");
        assert_eq!(again.token, p.token);
        assert_eq!(again.exchange_timestamp, p.exchange_timestamp);
        let _ = p.to_tick();
    }
    let mut out = Vec::new();
    let mut d = AngelDecoder::new();
    match d.binary(data, &mut out) {
        Ok(_) => assert_eq!(out.len(), 1),
        Err(_) => assert!(out.is_empty()),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_text(s);
        let _ = decode_request(s);
        let _ = d.text(s, &mut out);
    }
});

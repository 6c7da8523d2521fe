//! Angel One SmartAPI WebSocket 2.0 adapter. For now only the pure codec (binary little-endian
//! packets, text frames and requests, both directions); the broker description comes later.

pub mod codec;

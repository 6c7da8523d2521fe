//! NorenOMS adapter (Shoonya / Flattrade and other Noren brokers). For now only the pure codec
//! (JSON text frames with string values, snapshot + delta merging, both directions); the broker
//! description comes later.

pub mod codec;

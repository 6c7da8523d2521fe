//! tickmux: a terminal market monitor with a shared-feed engine for Indian-broker market data.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod engine;
pub mod instruments;
pub mod logging;
pub mod model;
pub mod proxy;
pub mod secret;
pub mod sim;
pub mod tui;

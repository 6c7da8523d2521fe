//! The terminal UI: pure state (`app`), rendering (`view`), and the runtime that owns the
//! terminal and the event loop.

pub mod action;
pub mod app;
pub mod format;
pub mod keymap;
pub mod theme;
pub mod view;

pub mod runtime;
pub mod terminal;
pub mod watchlist;

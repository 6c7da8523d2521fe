//! Screen areas for a terminal size. `draw` and `table_rows` both use this, so the runtime's
//! viewport always matches what is drawn. From 80 columns the health pane sits right of the
//! table; narrower, it folds into a one-line status bar. Every size down to 0x0 yields valid
//! (possibly empty) areas.

use ratatui::layout::{Constraint, Layout, Rect};

/// Width below which the health pane folds into a status line.
pub const WIDE: u16 = 80;

/// Where everything goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Areas {
    /// Header bar.
    pub header: Rect,
    /// Tab bar.
    pub tabs: Rect,
    /// Folded health (narrow terminals only).
    pub status: Option<Rect>,
    /// Table / depth block (with its border).
    pub main: Rect,
    /// Health pane (wide terminals only).
    pub health: Option<Rect>,
    /// Event log block.
    pub events: Option<Rect>,
    /// Footer / confirm bar / filter line.
    pub footer: Rect,
}

/// Height of the event log block for a terminal height.
fn events_height(h: u16, wide: bool) -> u16 {
    match (wide, h) {
        (_, h) if h >= 40 => 10,
        (true, h) if h >= 24 => 6,
        (false, h) if h >= 20 => 5,
        (_, h) if h >= 16 => 4,
        _ => 0,
    }
}

/// Width of the health pane for a terminal width.
fn health_width(w: u16) -> u16 {
    if w >= 110 { 36 } else { 33 }
}

/// The areas for a terminal of this size.
pub fn areas(area: Rect) -> Areas {
    let wide = area.width >= WIDE;
    let status_h = u16::from(!wide);
    let ev = events_height(area.height, wide);
    let [header, tabs, status, middle, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(status_h),
        Constraint::Fill(1),
        Constraint::Length(ev),
        Constraint::Length(1),
    ])
    .areas(area);
    let (main, health) = if wide {
        let [m, h] = Layout::horizontal([
            Constraint::Fill(1),
            Constraint::Length(health_width(area.width)),
        ])
        .areas(middle);
        (m, Some(h))
    } else {
        (middle, None)
    };
    Areas {
        header,
        tabs,
        status: (!wide && status.height > 0).then_some(status),
        main,
        health,
        events: (events.height > 0).then_some(events),
        footer,
    }
}

/// Table body rows that fit in the main block (border and header row taken off).
pub fn table_rows(main: Rect) -> u16 {
    main.height.saturating_sub(3)
}

//! Rendering only: every function here reads the [`App`] and writes into the frame's buffer.
//! No I/O, no locks, no channels; rows are built only for what is visible.

mod depth;
mod events;
mod faults;
mod footer;
mod header;
mod health;
mod help;
pub mod layout;
mod prompt;
mod table;
mod tabs;

use super::app::{App, Overlay, Tab};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Widget;

/// Draw the whole UI for the current state.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let a = layout::areas(area);
    let buf = frame.buffer_mut();
    header::render(app, a.header, buf);
    tabs::render(app, a.tabs, buf);
    if let Some(r) = a.status {
        health::render_status(app, r, buf);
    }
    match app.tab {
        Tab::Ltp | Tab::Quote => table::render(app, a.main, buf),
        Tab::Depth => depth::render(app, a.main, buf),
    }
    if let Some(r) = a.health {
        health::render_pane(app, r, buf);
    }
    if let Some(r) = a.events {
        events::render(app, r, buf);
    }
    footer::render(app, a.footer, buf);
    match app.overlay {
        Overlay::Help => help::render(app, area, buf),
        Overlay::Prompt => {
            if let Some(pos) = prompt::render(app, area, buf) {
                frame.set_cursor_position(pos);
            }
        }
        Overlay::FaultMenu => faults::render(app, area, buf),
        Overlay::None | Overlay::Confirm(_) | Overlay::Filter => {}
    }
}

/// Table body rows that fit on a terminal of this size (give it to `App::set_viewport`).
pub fn table_rows(area: Rect) -> u16 {
    layout::table_rows(layout::areas(area).main)
}

/// Write one line into `area`'s first row, clipped to its width.
pub(crate) fn put_line(line: Line<'_>, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    line.render(Rect { height: 1, ..area }, buf);
}

/// A rectangle of at most `w` x `h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

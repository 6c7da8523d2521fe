//! The subscribe prompt: input line, mode (Tab cycles), format hint, and the error that kept
//! the last attempt from subscribing anything.

use super::centered;
use crate::tui::app::App;
use crate::tui::format;
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

/// Render the prompt; returns where the cursor goes.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) -> Option<Position> {
    let t = &app.theme;
    let p = &app.prompt;
    let inner_w = usize::from(area.width.min(72).saturating_sub(2)).max(1);
    // Room for the wrapped error (a rough count is enough: extra lines stay blank).
    let err_lines = p
        .error
        .as_ref()
        .map_or(0, |e| (format::width(e) + 24).div_ceil(inner_w));
    let pop = centered(area, 72, 5 + err_lines as u16);
    Clear.render(pop, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.accent)
        .title(Line::styled(" Subscribe ", t.accent))
        .title_bottom(
            Line::styled(" Enter subscribe · Tab mode · Esc cancel ", t.dim).right_aligned(),
        );
    let inner = block.inner(pop);
    block.render(pop, buf);
    if inner.width == 0 || inner.height == 0 {
        return None;
    }
    // Show the end of long input: that is where typing happens.
    let room = usize::from(inner.width).saturating_sub(3);
    let shown: String = {
        let n = p.text.chars().count();
        if format::width(&p.text) > room {
            p.text.chars().skip(n.saturating_sub(room)).collect()
        } else {
            p.text.clone()
        }
    };
    let mut lines = vec![
        Line::from(vec![Span::styled("> ", t.accent), Span::raw(shown.clone())]),
        Line::from(vec![
            Span::styled("mode ", t.dim),
            Span::styled(p.mode.as_str(), t.accent),
            Span::styled(" (Tab) · or end with ltp/quote/depth", t.dim),
        ]),
        Line::styled("e.g. NSE:INFY, NSE:TCS depth", t.dim),
    ];
    if let Some(e) = &p.error {
        lines.push(Line::styled(format!("✗ {e} — nothing subscribed"), t.error));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
    let x = inner.x + 2 + format::width(&shown) as u16;
    Some(Position::new(
        x.min(inner.right().saturating_sub(1)),
        inner.y,
    ))
}

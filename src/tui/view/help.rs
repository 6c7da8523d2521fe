//! The `?` popup: every binding from the keymap, in two columns when they fit, plus any
//! problems with `[keys]` in the config.

use super::centered;
use crate::tui::app::App;
use crate::tui::format;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

/// Key column width.
const KEYS: usize = 13;

/// Render the help popup over `area`.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let rows = app.keymap.help_rows();
    let errors: Vec<&str> = app
        .events
        .iter()
        .filter(|l| l.kind == "keys")
        .map(|l| l.text.as_str())
        .collect();
    let pop = centered(
        area,
        78,
        2 + rows.len().div_ceil(2) as u16 + errors.len() as u16 * 2,
    );
    Clear.render(pop, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.accent)
        .title(Line::styled(" Keys ", t.accent))
        .title_bottom(Line::styled(" ? or Esc closes ", t.dim).right_aligned());
    let inner = block.inner(pop);
    block.render(pop, buf);
    let w = usize::from(inner.width);
    let cols = if w >= 60 && rows.len() > usize::from(inner.height) {
        2
    } else {
        1
    };
    let cw = w / cols;
    let per_col = rows.len().div_ceil(cols);
    let mut lines: Vec<Line> = Vec::new();
    for i in 0..per_col {
        let mut spans = Vec::new();
        for c in 0..cols {
            if let Some((k, d)) = rows.get(c * per_col + i) {
                let k = format::fit(k, KEYS);
                let d = format::fit(d, cw.saturating_sub(KEYS + 2));
                spans.push(Span::styled(format!(" {k:<KEYS$} "), t.accent));
                let pad = cw.saturating_sub(KEYS + 2);
                spans.push(Span::raw(format!("{d:<pad$}")));
            }
        }
        lines.push(Line::from(spans));
    }
    for e in errors {
        lines.push(Line::styled(format!(" ⚠ {e}"), t.error));
    }
    Paragraph::new(lines).render(inner, buf);
}

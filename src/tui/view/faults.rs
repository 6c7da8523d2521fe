//! The simulator's fault menu (which-key style), listed from the keymap's fault bindings.

use super::centered;
use crate::tui::app::App;
use crate::tui::keymap::{Context, Keymap, Target};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

/// Render the fault menu over `area`.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let items: Vec<(String, &'static str)> = app
        .keymap
        .bindings()
        .iter()
        .filter(|b| {
            b.contexts.contains(&Context::FaultMenu) && matches!(b.target, Target::Fault(_))
        })
        .map(|b| (Keymap::keys_text(b), b.help))
        .collect();
    let pop = centered(area, 40, items.len() as u16 + 3);
    Clear.render(pop, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.warn)
        .title(Line::styled(" Inject a fault (sim) ", t.warn))
        .title_bottom(Line::styled(" Esc closes ", t.dim).right_aligned());
    let inner = block.inner(pop);
    block.render(pop, buf);
    let mut lines: Vec<Line> = items
        .into_iter()
        .map(|(k, h)| {
            Line::from(vec![
                Span::styled(format!(" {k:<3}"), t.accent),
                Span::raw(h),
            ])
        })
        .collect();
    lines.push(Line::styled(" the engine should recover by itself", t.dim));
    Paragraph::new(lines).render(inner, buf);
}

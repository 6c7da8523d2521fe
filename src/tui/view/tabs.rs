//! Tab bar: the three tabs on the left; sort, filter and row count on the right.

use super::put_line;
use crate::tui::app::{App, Overlay, SortKey, Tab};
use crate::tui::format;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

/// Render the tab bar.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" │ ", t.dim));
        }
        let text = format!("{} {}", i + 1, tab.title());
        if *tab == app.tab {
            spans.push(Span::styled(
                text,
                t.accent.add_modifier(Modifier::REVERSED),
            ));
        } else {
            spans.push(Span::raw(text));
        }
    }
    let left = Line::from(spans);
    // Right side: what shapes the rows.
    let mut info: Vec<String> = Vec::new();
    if app.sort != SortKey::Watchlist {
        info.push(format!("sort: {}", app.sort.label()));
    }
    if !app.filter.is_empty() || app.overlay == Overlay::Filter {
        info.push(format!("filter: {}", app.filter));
    }
    let (n, total) = (app.row_count(), app.watch_len());
    info.push(if n == total {
        format!("{total} instruments")
    } else {
        format!("{n} of {total}")
    });
    let right = format!("{} ", info.join(" · "));
    let lw = left.width();
    let room = usize::from(area.width).saturating_sub(lw + 1);
    put_line(left, area, buf);
    if room > 0 {
        let r = format::fit(&right, room);
        let rw = format::width(&r) as u16;
        let x = area.x + area.width.saturating_sub(rw);
        put_line(
            Line::styled(r, t.dim),
            Rect {
                x,
                width: rw,
                ..area
            },
            buf,
        );
    }
}

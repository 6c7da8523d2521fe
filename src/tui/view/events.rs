//! The event log: "HH:MM:SS kind text", newest at the bottom.

use super::put_line;
use crate::tui::app::{App, LogLine};
use crate::tui::format;
use crate::tui::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

/// Width of the kind column.
const KIND: usize = 14;

fn kind_style(t: &Theme, kind: &str) -> Style {
    match kind {
        "token_invalid" | "exhausted" | "broker_error" | "error" | "keys" => t.error,
        "stale" | "disconnected" | "connect_failed" | "reconnect" | "backoff" | "lagged"
        | "fault" | "faults" | "watchlist" | "fallback" => t.warn,
        "connected" | "live" | "recovered" | "resubscribed" => t.ok,
        _ => t.accent,
    }
}

fn line(t: &Theme, l: &LogLine) -> Line<'static> {
    let at = l
        .at_unix_ms
        .map(format::ist_hms)
        .unwrap_or_else(|| "--:--:--".into());
    Line::from(vec![
        Span::styled(format!("{at} "), t.dim),
        Span::styled(
            format!("{:<KIND$} ", format::fit(&l.kind, KIND)),
            kind_style(t, &l.kind),
        ),
        Span::raw(l.text.clone()),
    ])
}

/// Render the event log.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Line::styled(" Events (IST) ", t.accent));
    let inner = block.inner(area);
    block.render(area, buf);
    let n = usize::from(inner.height);
    if n == 0 {
        return;
    }
    if app.events.is_empty() {
        put_line(Line::styled("no events yet", t.dim), inner, buf);
        return;
    }
    let skip = app.events.len().saturating_sub(n);
    for (i, l) in app.events.iter().skip(skip).enumerate() {
        let y = inner.y + i as u16;
        put_line(
            line(t, l),
            Rect {
                y,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

//! The health pane (every `Health` field, state as a word and a colour) and, on narrow
//! terminals, the same essentials folded into one status line.

use super::put_line;
use crate::engine::health::{EngineState, Health, QualityLabel, TransportMode};
use crate::tui::app::{App, ProxyPane};
use crate::tui::format;
use crate::tui::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

const LABEL: usize = 11;
/// Lines for the last error when the pane is short; tall panes give it what is left over.
const ERROR_LINES: usize = 3;
/// Lines every other field takes (12 core + 6 extras).
const OTHER_LINES: usize = 18;

/// The state as words: "LIVE", "TOKEN INVALID".
pub(crate) fn state_word(s: EngineState) -> String {
    s.as_str().replace('_', " ").to_uppercase()
}

/// Colour of a state (the word is always shown too).
pub(crate) fn state_style(t: &Theme, s: EngineState) -> Style {
    match s {
        EngineState::Live => t.ok,
        EngineState::Stale
        | EngineState::Backoff
        | EngineState::Connecting
        | EngineState::Subscribing
        | EngineState::ValidatingToken
        | EngineState::FallbackRest => t.warn,
        EngineState::TokenInvalid | EngineState::Exhausted | EngineState::Stopped => t.error,
        EngineState::Closed | EngineState::Idle => t.accent,
    }
}

fn quality_style(t: &Theme, q: QualityLabel) -> Style {
    match q {
        QualityLabel::Excellent => t.ok,
        QualityLabel::Degraded => t.warn,
        QualityLabel::Poor => t.error,
    }
}

fn quality_word(q: QualityLabel) -> &'static str {
    match q {
        QualityLabel::Excellent => "EXCELLENT",
        QualityLabel::Degraded => "DEGRADED",
        QualityLabel::Poor => "POOR",
    }
}

/// Milliseconds until the backoff retry, by the app clock when known.
fn next_in_ms(app: &App, h: &Health) -> Option<u64> {
    let b = h.backoff?;
    Some(match app.clock {
        Some(c) => u64::try_from(b.next_at_unix_ms - c.timestamp_millis()).unwrap_or(0),
        None => b.next_in_ms,
    })
}

/// "attempt 3/10, next in 4.2 s".
pub(crate) fn backoff_text(app: &App, h: &Health) -> Option<String> {
    let b = h.backoff?;
    let ms = next_in_ms(app, h).unwrap_or(0);
    Some(format!(
        "attempt {}/{}, next in {:.1} s",
        b.attempt,
        b.max,
        ms as f64 / 1000.0
    ))
}

/// Word-wrap to `w` cells (long words are cut).
fn wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while format::width(&word) > w {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            let head: String = word.chars().take(w).collect();
            word = word.chars().skip(w).collect();
            out.push(head);
        }
        let need = format::width(&cur) + usize::from(!cur.is_empty()) + format::width(&word);
        if need > w && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// "3 on :8765 (subs 12, 5, 0)", "off", or why it is not running.
pub(crate) fn proxy_text(p: &ProxyPane, t: &Theme) -> (String, Style) {
    match p {
        ProxyPane::Off => ("off".into(), t.dim),
        ProxyPane::Failed(why) => (format!("off ({why})"), t.warn),
        ProxyPane::On(s) => {
            let port = s.listen.rsplit(':').next().unwrap_or("?");
            let authed: Vec<String> = s
                .clients
                .iter()
                .filter(|c| c.authenticated)
                .map(|c| c.subscriptions.to_string())
                .collect();
            let waiting = s.clients.len() - authed.len();
            let mut text = format!("{} on :{port}", authed.len());
            if !authed.is_empty() {
                text.push_str(&format!(" (subs {})", authed.join(", ")));
            }
            if waiting > 0 {
                text.push_str(&format!(", {waiting} unauthenticated"));
            }
            let dropped: u64 = s.clients.iter().map(|c| c.dropped).sum();
            if dropped > 0 {
                text.push_str(&format!(", {dropped} dropped"));
            }
            (text, Style::new())
        }
    }
}

/// Lines of the pane, most important first.
fn lines(app: &App, w: usize, h: usize) -> Vec<Line<'static>> {
    let error_lines = (ERROR_LINES + h.saturating_sub(OTHER_LINES + ERROR_LINES)).min(8);
    let t = &app.theme;
    let h = &app.health;
    let vw = w.saturating_sub(LABEL).max(1);
    let mut out: Vec<Line<'static>> = Vec::new();
    let mut field = |label: &str, spans: Vec<Span<'static>>| {
        let mut v = vec![Span::styled(format!("{label:<LABEL$}"), t.dim)];
        v.extend(spans);
        out.push(Line::from(v));
    };
    let st = state_style(t, h.state);
    field(
        "state",
        vec![Span::styled(format!("● {}", state_word(h.state)), st)],
    );
    field(
        "transport",
        vec![Span::raw(match h.transport {
            TransportMode::Websocket => "websocket",
            TransportMode::RestPolling => "REST polling",
        })],
    );
    field(
        "quality",
        vec![
            Span::raw(format!("{:.0}% ", h.quality_pct)),
            Span::styled(quality_word(h.quality), quality_style(t, h.quality)),
        ],
    );
    let age = match h.last_tick_age_ms {
        Some(_) => format!("{} ago", format::age_long(h.last_tick_age_ms)),
        None => "never".into(),
    };
    field("last tick", vec![Span::raw(age)]);
    field(
        "ticks/s",
        vec![Span::raw(format!("{:.1}", h.ticks_per_sec))],
    );
    let wrapped =
        |label: &str, text: &str, style: Style, max: usize, out: &mut Vec<Line<'static>>| {
            for (i, part) in wrap(text, vw).into_iter().take(max).enumerate() {
                let l = if i == 0 { label } else { "" };
                out.push(Line::from(vec![
                    Span::styled(format!("{l:<LABEL$}"), t.dim),
                    Span::styled(part, style),
                ]));
            }
        };
    match backoff_text(app, h) {
        Some(b) => wrapped("backoff", &b, t.warn, 2, &mut out),
        None => wrapped("backoff", "—", Style::new(), 1, &mut out),
    }
    wrapped(
        "reconnects",
        &h.reconnects.to_string(),
        Style::new(),
        1,
        &mut out,
    );
    match &h.last_error {
        Some(e) => wrapped(
            "last error",
            &format!("{}: {}", e.kind.as_str(), e.text),
            t.error,
            error_lines,
            &mut out,
        ),
        None => wrapped("last error", "—", Style::new(), 1, &mut out),
    }
    let subs_style = if h.applied < h.desired {
        t.warn
    } else {
        Style::new()
    };
    wrapped(
        "subs",
        &format!("{} desired, {} applied", h.desired, h.applied),
        subs_style,
        2,
        &mut out,
    );
    wrapped(
        "consumers",
        &h.consumers.to_string(),
        Style::new(),
        1,
        &mut out,
    );
    let up_style = if h.upstream_connections > 1 {
        t.error
    } else {
        Style::new()
    };
    wrapped(
        "upstream",
        &h.upstream_connections.to_string(),
        up_style,
        1,
        &mut out,
    );
    let (clients, clients_style) = proxy_text(&app.proxy, t);
    wrapped("clients", &clients, clients_style, 2, &mut out);
    let extras = [
        (
            "market",
            if h.market_open {
                "open".to_string()
            } else {
                "closed".into()
            },
        ),
        ("ticks", format::grouped(h.ticks_total)),
        ("stale seen", h.stale_events.to_string()),
        (
            "bad frames",
            format!("{} (+{} skipped)", h.malformed_frames, h.skipped_packets),
        ),
        ("drops", h.stream_drops.to_string()),
        ("epoch", h.epoch.to_string()),
    ];
    for (l, v) in extras {
        wrapped(l, &v, Style::new(), 1, &mut out);
    }
    out
}

/// Render the health pane.
pub(crate) fn render_pane(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Line::styled(" Health ", t.accent));
    let inner = block.inner(area);
    block.render(area, buf);
    for (i, l) in lines(app, usize::from(inner.width), usize::from(inner.height))
        .into_iter()
        .take(usize::from(inner.height))
        .enumerate()
    {
        let y = inner.y + i as u16;
        put_line(
            l,
            Rect {
                y,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

/// Render the folded one-line status (narrow terminals).
pub(crate) fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let h = &app.health;
    let mut parts: Vec<Span<'static>> = vec![Span::styled(
        format!("● {}", state_word(h.state)),
        state_style(t, h.state),
    )];
    if let (Some(b), Some(ms)) = (h.backoff, next_in_ms(app, h)) {
        parts.push(Span::styled(
            format!(
                "retry {}/{} in {:.1} s",
                b.attempt,
                b.max,
                ms as f64 / 1000.0
            ),
            t.warn,
        ));
    }
    if let Some(e) = &h.last_error {
        parts.push(Span::styled(format!("err {}", e.kind.as_str()), t.error));
    }
    parts.push(Span::styled(
        format!("q {:.0}% {}", h.quality_pct, quality_word(h.quality)),
        quality_style(t, h.quality),
    ));
    parts.push(Span::raw(format!(
        "tick {}",
        format::age_long(h.last_tick_age_ms)
    )));
    parts.push(Span::raw(format!("{:.1}/s", h.ticks_per_sec)));
    parts.push(Span::raw(format!("subs {}/{}", h.applied, h.desired)));
    if let ProxyPane::On(s) = &app.proxy {
        parts.push(Span::raw(format!("clients {}", s.authenticated())));
    }
    parts.push(Span::raw(format!("reconn {}", h.reconnects)));
    parts.push(Span::raw(match h.transport {
        TransportMode::Websocket => "ws".to_string(),
        TransportMode::RestPolling => "REST".to_string(),
    }));
    parts.push(Span::raw(format!("up {}", h.upstream_connections)));
    // Keep whole parts only, in order, while they fit.
    let w = usize::from(area.width);
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (i, p) in parts.into_iter().enumerate() {
        let sep = if i == 0 { 0 } else { 3 };
        let pw = p.width();
        if used + sep + pw > w {
            if i == 0 {
                spans.push(Span::styled(
                    format::fit(&p.content, w.saturating_sub(used)),
                    p.style,
                ));
            }
            break;
        }
        if sep > 0 {
            spans.push(Span::styled(" │ ", t.dim));
        }
        used += sep + pw;
        spans.push(p);
    }
    put_line(Line::from(spans), area, buf);
}

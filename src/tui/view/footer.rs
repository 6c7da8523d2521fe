//! Bottom line: the main keys of the current context (from the keymap), or the confirm bar,
//! or the filter being typed.

use super::put_line;
use crate::tui::action::Action;
use crate::tui::app::{App, Confirming, Overlay};
use crate::tui::keymap::Target;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

/// "key label" pairs that fit the width, in priority order, shown in the original order.
fn keys_line(app: &App, width: usize, lead: Vec<Span<'static>>) -> Line<'static> {
    let t = &app.theme;
    let entries: Vec<(String, &'static str)> = app
        .keymap
        .footer_entries(app.context())
        .into_iter()
        // The fault menu exists only on the simulator.
        .filter(|(_, _, tg)| app.simulator || *tg != Target::Action(Action::FaultMenu))
        .map(|(k, l, _)| (k, l))
        .collect();
    let mut spans = lead;
    let mut used: usize = spans.iter().map(|s| s.width()).sum();
    for (k, l) in entries {
        let w = k.chars().count() + 1 + l.chars().count() + 2;
        if used + w > width {
            break;
        }
        used += w;
        spans.push(Span::styled(k, t.accent));
        spans.push(Span::raw(format!(" {l}  ")));
    }
    Line::from(spans)
}

/// Render the footer.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let w = usize::from(area.width);
    let line = match app.overlay {
        Overlay::Confirm(what) => {
            let q = match what {
                Confirming::UnsubscribeAll => format!(
                    " Unsubscribe all {} instruments? (the session stays) ",
                    app.watch_len()
                ),
                Confirming::ForceReconnect => " Force a reconnect now? ".to_string(),
            };
            keys_line(
                app,
                w,
                vec![
                    Span::styled(q, t.warn.add_modifier(Modifier::REVERSED)),
                    Span::raw(" "),
                ],
            )
        }
        Overlay::Filter => keys_line(
            app,
            w,
            vec![
                Span::styled(" filter: ", t.accent),
                Span::raw(format!("{}▏ ", app.filter)),
            ],
        ),
        _ => keys_line(app, w, vec![Span::raw(" ")]),
    };
    put_line(line, area, buf);
}

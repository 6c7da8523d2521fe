//! The Depth tab: five bid and five ask levels of the selected instrument with quantities,
//! orders and totals. Up/Down still move the selection, so the tab follows it.

use super::put_line;
use super::table::{move_style, row_style, status_text};
use crate::model::{Level, Mode};
use crate::tui::action::Action;
use crate::tui::app::{App, RowStatus, VisibleRow};
use crate::tui::format;
use crate::tui::keymap::{Context, Keymap, Target};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

const ORD: usize = 3;
const QTY: usize = 7;

/// Key that cycles the mode, for the hint.
fn mode_key(app: &App) -> String {
    app.keymap
        .bindings()
        .iter()
        .find(|b| {
            b.contexts.contains(&Context::Normal) && b.target == Target::Action(Action::CycleMode)
        })
        .map(Keymap::keys_text)
        .unwrap_or_else(|| "m".into())
}

fn side(l: Option<&Level>, dec: usize, pw: usize, orders: bool, bid: bool) -> (String, String) {
    let (p, q, o) = match l {
        Some(l) if l.quantity > 0 || l.price.0 != 0 => (
            format::price(l.price, dec),
            format::qty(l.quantity),
            l.orders.to_string(),
        ),
        _ => ("—".into(), String::new(), String::new()),
    };
    let price = if bid {
        format!("{p:>pw$}")
    } else {
        format!("{p:<pw$}")
    };
    let rest = if bid {
        let o = if orders {
            format!("{o:>ORD$} ")
        } else {
            String::new()
        };
        format!("{o}{q:>QTY$} ")
    } else {
        let o = if orders {
            format!(" {o:>ORD$}")
        } else {
            String::new()
        };
        format!(" {q:>QTY$}{o}")
    };
    (price, rest)
}

/// Render the depth of the selected instrument.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let row = app.selected_row();
    let title = match &row {
        Some(r) => format!(" Depth · {} · {} mode ", r.inst.display_name(), r.mode),
        None => " Depth ".into(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Line::styled(title, t.accent));
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let Some(r) = row else {
        let hint = if app.watch_len() == 0 {
            "No instruments yet: subscribe one in depth mode to see its order book."
        } else {
            "No instrument selected."
        };
        Paragraph::new(hint)
            .style(t.dim)
            .wrap(Wrap { trim: true })
            .render(inner, buf);
        return;
    };
    let mut y = inner.y;
    let bottom = inner.y + inner.height;
    let mut line = |l: Line<'_>, buf: &mut Buffer| {
        if y < bottom {
            put_line(
                l,
                Rect {
                    y,
                    height: 1,
                    ..inner
                },
                buf,
            );
            y += 1;
        }
    };
    line(summary(app, &r), buf);
    if r.mode < Mode::Depth {
        let msg = format!(
            "{} is subscribed in {} mode; press {} to cycle to depth mode.",
            r.inst.display_name(),
            r.mode,
            mode_key(app)
        );
        let rest = Rect {
            y: y.min(bottom),
            height: bottom.saturating_sub(y),
            ..inner
        };
        Paragraph::new(msg)
            .style(t.dim)
            .wrap(Wrap { trim: true })
            .render(rest, buf);
        return;
    }
    let Some(depth) = r.data.and_then(|d| d.tick.depth) else {
        line(Line::styled("waiting for depth…", t.dim), buf);
        return;
    };
    let live = matches!(r.status, RowStatus::Live | RowStatus::Delayed);
    let base = row_style(
        t,
        &VisibleRow {
            selected: false,
            ..r.clone()
        },
    );
    let w = usize::from(inner.width);
    // Capped so price and quantity stay close on wide terminals.
    let half = (w.saturating_sub(3) / 2).min(ORD + QTY + 14);
    let orders = half >= ORD + QTY + 11;
    let pw = half
        .saturating_sub(QTY + 1 + if orders { ORD + 1 } else { 0 })
        .max(1);
    let hdr = |s: &str| Span::styled(s.to_string(), Style::new().add_modifier(Modifier::BOLD));
    let (bo, ao) = if orders {
        (format!("{:>ORD$} ", "ORD"), format!(" {:>ORD$}", "ORD"))
    } else {
        (String::new(), String::new())
    };
    line(
        Line::from(vec![
            hdr(&format!("{bo}{:>QTY$} {:>pw$}", "QTY", "BID")),
            Span::styled(" │ ", t.dim),
            hdr(&format!("{:<pw$} {:>QTY$}{ao}", "ASK", "QTY")),
        ])
        .style(base),
        buf,
    );
    let bid_style = base.patch(move_style(t, live, std::cmp::Ordering::Greater, false));
    let ask_style = base.patch(move_style(t, live, std::cmp::Ordering::Less, false));
    for i in 0..5 {
        let (bp, brest) = side(depth.buy.get(i), r.decimals, pw, orders, true);
        let (ap, arest) = side(depth.sell.get(i), r.decimals, pw, orders, false);
        line(
            Line::from(vec![
                Span::styled(brest, base),
                Span::styled(bp, bid_style),
                Span::styled(" │ ", t.dim),
                Span::styled(ap, ask_style),
                Span::styled(arest, base),
            ]),
            buf,
        );
    }
    let sum = |ls: &[Level]| ls.iter().map(|l| l.quantity).sum::<u64>();
    let sum_o = |ls: &[Level]| ls.iter().map(|l| u64::from(l.orders)).sum::<u64>();
    let (bt, at) = (format::qty(sum(&depth.buy)), format::qty(sum(&depth.sell)));
    let (bto, ato) = if orders {
        (
            format!("{:>ORD$} ", sum_o(&depth.buy)),
            format!(" {:>ORD$}", sum_o(&depth.sell)),
        )
    } else {
        (String::new(), String::new())
    };
    line(
        Line::from(vec![
            Span::raw(format!("{bto}{bt:>QTY$} {:>pw$}", "total")),
            Span::styled(" │ ", t.dim),
            Span::raw(format!("{:<pw$} {at:>QTY$}{ato}", "total")),
        ])
        .style(base.add_modifier(Modifier::BOLD)),
        buf,
    );
    if let Some(q) = r.data.and_then(|d| d.tick.quote) {
        line(
            Line::styled(
                format!(
                    "all levels: buy {} · sell {}",
                    format::qty(q.total_buy_quantity),
                    format::qty(q.total_sell_quantity)
                ),
                base,
            ),
            buf,
        );
    }
}

/// "LTP 1523.45  ▲ +1.23%  0.3s" with the stale tag when not live.
fn summary(app: &App, r: &VisibleRow) -> Line<'static> {
    let t = &app.theme;
    let live = matches!(r.status, RowStatus::Live | RowStatus::Delayed);
    let mut spans = vec![Span::raw("LTP ")];
    match r.data {
        Some(d) => {
            spans.push(Span::styled(
                format::price(d.tick.ltp, r.decimals),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            if let Some(q) = d.tick.quote {
                spans.push(Span::raw("  "));
                spans.push(Span::styled(
                    format::change(q.change),
                    move_style(t, live, format::change_dir(q.change), false),
                ));
            }
        }
        None => spans.push(Span::raw("—")),
    }
    spans.push(Span::raw("  "));
    let st = if live { t.dim } else { t.warn };
    spans.push(Span::styled(status_text(r), st));
    let base = row_style(
        t,
        &VisibleRow {
            selected: false,
            ..r.clone()
        },
    );
    Line::from(spans).style(base)
}

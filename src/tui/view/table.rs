//! The LTP and Quote tabs: one table, with columns chosen by priority to fit the width.
//! Rows are built only for the visible window.

use super::layout;
use crate::tui::app::{App, Dir, RowStatus, Tab, VisibleRow};
use crate::tui::format;
use crate::tui::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget, Wrap};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Symbol,
    Mode,
    Ltp,
    Chg,
    Volume,
    Open,
    High,
    Low,
    Close,
    Oi,
    Buy,
    Sell,
    Status,
}

const SYMBOL_MIN: u16 = 14;
const SYMBOL_MAX: u16 = 22;

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Symbol => "SYMBOL",
            Col::Mode => "MODE",
            Col::Ltp => "LTP",
            Col::Chg => "CHG%",
            Col::Volume => "VOLUME",
            Col::Open => "OPEN",
            Col::High => "HIGH",
            Col::Low => "LOW",
            Col::Close => "CLOSE",
            Col::Oi => "OI",
            Col::Buy => "BUYQTY",
            Col::Sell => "SELLQTY",
            Col::Status => "AGE",
        }
    }

    fn width(self) -> u16 {
        match self {
            Col::Symbol => SYMBOL_MIN,
            Col::Mode => 5,
            Col::Ltp | Col::Chg | Col::Open | Col::High | Col::Low | Col::Close => 9,
            Col::Volume | Col::Oi => 8,
            Col::Buy | Col::Sell => 7,
            Col::Status => 9,
        }
    }

    fn right(self) -> bool {
        !matches!(self, Col::Symbol | Col::Mode | Col::Status)
    }
}

/// Display order, and groups in priority order (a group is shown whole or not at all, so
/// HIGH never appears without LOW). The status column comes right after the price: a stale
/// price must never be shown without its tag.
type Columns = (&'static [Col], &'static [&'static [Col]]);

fn columns(tab: Tab) -> Columns {
    match tab {
        Tab::Quote => (
            &[
                Col::Symbol,
                Col::Ltp,
                Col::Chg,
                Col::Volume,
                Col::Open,
                Col::High,
                Col::Low,
                Col::Close,
                Col::Oi,
                Col::Buy,
                Col::Sell,
                Col::Status,
            ],
            &[
                &[Col::Symbol],
                &[Col::Ltp],
                &[Col::Status],
                &[Col::Volume],
                &[Col::Chg],
                &[Col::High, Col::Low],
                &[Col::Buy, Col::Sell],
                &[Col::Open, Col::Close],
                &[Col::Oi],
            ],
        ),
        _ => (
            &[Col::Symbol, Col::Mode, Col::Ltp, Col::Chg, Col::Status],
            &[
                &[Col::Symbol],
                &[Col::Ltp],
                &[Col::Status],
                &[Col::Chg],
                &[Col::Mode],
            ],
        ),
    }
}

/// Columns that fit `w` cells (1-cell gaps), in display order, with their widths; the symbol
/// column takes the slack up to [`SYMBOL_MAX`]. OI is offered only when `has_oi`.
fn fit_columns(tab: Tab, w: u16, has_oi: bool) -> Vec<(Col, u16)> {
    let (order, groups) = columns(tab);
    let mut chosen: Vec<Col> = Vec::new();
    let mut used: u16 = 0;
    // OI only means something for derivatives: no column for a screen of equities.
    for g in groups.iter().filter(|g| has_oi || !g.contains(&Col::Oi)) {
        let add: u16 = g.iter().map(|c| c.width() + 1).sum();
        if used + add <= w + 1 || chosen.is_empty() {
            chosen.extend_from_slice(g);
            used += add;
        }
    }
    let slack = (w + 1).saturating_sub(used);
    order
        .iter()
        .filter(|c| chosen.contains(c))
        .map(|&c| {
            let cw = if c == Col::Symbol {
                (SYMBOL_MIN + slack).min(SYMBOL_MAX).min(w)
            } else {
                c.width()
            };
            (c, cw)
        })
        .collect()
}

/// Style of a number that moved, unless the row must not look live.
pub(crate) fn move_style(t: &Theme, live: bool, dir: Ordering, flash: bool) -> Style {
    if !live {
        return Style::new();
    }
    match (dir, flash) {
        (Ordering::Greater, false) => t.up,
        (Ordering::Greater, true) => t.flash_up,
        (Ordering::Less, false) => t.down,
        (Ordering::Less, true) => t.flash_down,
        (Ordering::Equal, _) => Style::new(),
    }
}

/// "0.3s" when live, else the tag and a whole-second age ("stale 12s").
pub(crate) fn status_text(r: &VisibleRow) -> String {
    match (r.status, r.age_ms) {
        (RowStatus::Waiting, _) => "waiting".into(),
        (RowStatus::Live, Some(a)) => format::age(a),
        (RowStatus::Live, None) => String::new(),
        (s, Some(a)) if a < 1000 => s.tag().to_string(),
        (s, Some(a)) if a >= 10_000 => format!("{} {}", s.tag(), format::age(a)),
        (s, Some(a)) => format!("{} {}s", s.tag(), a / 1000),
        (s, None) => s.tag().to_string(),
    }
}

/// Base style of a row: dim when its data must not look live.
pub(crate) fn row_style(t: &Theme, r: &VisibleRow) -> Style {
    let base = match r.status {
        RowStatus::Live | RowStatus::Delayed => Style::new(),
        RowStatus::Stale | RowStatus::Closed | RowStatus::Waiting => t.stale,
    };
    if r.selected {
        base.patch(t.selected)
    } else {
        base
    }
}

fn cell(r: &VisibleRow, c: Col, w: u16, t: &Theme) -> Cell<'static> {
    let live = matches!(r.status, RowStatus::Live | RowStatus::Delayed);
    let q = r.data.and_then(|d| d.tick.quote);
    let px = |p| format::price(p, r.decimals);
    let dash = || "—".to_string();
    let (text, style) = match c {
        Col::Symbol => (
            format::fit(&r.inst.display_name(), usize::from(w)),
            Style::new(),
        ),
        Col::Mode => (r.mode.as_str().to_string(), t.dim),
        Col::Ltp => match r.data {
            Some(d) => {
                let dir = match d.dir {
                    Dir::Up => Ordering::Greater,
                    Dir::Down => Ordering::Less,
                    Dir::Flat => Ordering::Equal,
                };
                (px(d.tick.ltp), move_style(t, live, dir, r.flash))
            }
            None => (dash(), Style::new()),
        },
        Col::Chg => match q {
            Some(q) => (
                format::change(q.change),
                move_style(t, live, format::change_dir(q.change), false),
            ),
            None => (dash(), Style::new()),
        },
        Col::Volume => (
            q.map(|q| format::qty(q.volume)).unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Open => (
            q.map(|q| px(q.ohlc.open)).unwrap_or_else(dash),
            Style::new(),
        ),
        Col::High => (
            q.map(|q| px(q.ohlc.high)).unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Low => (q.map(|q| px(q.ohlc.low)).unwrap_or_else(dash), Style::new()),
        Col::Close => (
            q.map(|q| px(q.ohlc.close)).unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Oi => (
            q.map(|q| {
                if q.oi == 0 {
                    String::new()
                } else {
                    format::qty(q.oi)
                }
            })
            .unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Buy => (
            q.map(|q| format::qty(q.total_buy_quantity))
                .unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Sell => (
            q.map(|q| format::qty(q.total_sell_quantity))
                .unwrap_or_else(dash),
            Style::new(),
        ),
        Col::Status => {
            let s = match r.status {
                RowStatus::Live => t.dim,
                RowStatus::Stale | RowStatus::Delayed => t.warn,
                RowStatus::Waiting | RowStatus::Closed => Style::new(),
            };
            (format::fit(&status_text(r), usize::from(w)), s)
        }
    };
    let line = Line::from(text);
    let line = if c.right() {
        line.alignment(Alignment::Right)
    } else {
        line
    };
    Cell::from(line).style(style)
}

/// The hint shown instead of rows.
fn empty_hint(app: &App) -> String {
    if app.watch_len() == 0 {
        let key = app
            .keymap
            .footer(crate::tui::keymap::Context::Normal)
            .into_iter()
            .find(|(_, l)| *l == "add")
            .map(|(k, _)| k)
            .unwrap_or_else(|| "a".into());
        format!("No instruments yet. Press {key} to subscribe, e.g. NSE:INFY, NSE:TCS")
    } else {
        format!(
            "No symbol matches \"{}\". Esc clears the filter.",
            app.filter
        )
    }
}

/// Render the LTP or Quote table.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Line::styled(format!(" {} ", app.tab.title()), t.accent));
    let n = app.row_count();
    if n > 0 {
        block = block.title_bottom(
            Line::styled(format!(" {}/{} ", app.selected + 1, n), t.dim).right_aligned(),
        );
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    if n == 0 {
        Paragraph::new(empty_hint(app))
            .style(t.dim)
            .wrap(Wrap { trim: true })
            .render(inner, buf);
        return;
    }
    let visible = app.visible(usize::from(layout::table_rows(area)));
    let has_oi = visible
        .iter()
        .any(|r| r.data.and_then(|d| d.tick.quote).is_some_and(|q| q.oi > 0));
    let cols = fit_columns(app.tab, inner.width, has_oi);
    let rows: Vec<Row> = visible
        .iter()
        .map(|r| {
            Row::new(
                cols.iter()
                    .map(|&(c, w)| cell(r, c, w, t))
                    .collect::<Vec<_>>(),
            )
            .style(row_style(t, r))
        })
        .collect();
    let header = Row::new(
        cols.iter()
            .map(|&(c, _)| {
                let l = Line::from(c.title());
                Cell::from(if c.right() {
                    l.alignment(Alignment::Right)
                } else {
                    l
                })
            })
            .collect::<Vec<_>>(),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    Table::new(rows, cols.iter().map(|&(_, w)| Constraint::Length(w)))
        .header(header)
        .column_spacing(1)
        .render(inner, buf);
}

//! Header bar: tickmux │ source │ account │ IST clock │ market phase │ host-zone warning,
//! and PAUSED. Segments are dropped or shortened, least important first, to fit the width.

use super::put_line;
use crate::tui::app::App;
use crate::tui::format;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

const SEP: &str = " │ ";

/// The market-phase text: the simulator is always open; otherwise from the IST clock.
pub(crate) fn phase(app: &App) -> &'static str {
    if app.simulator {
        "market open (sim)"
    } else {
        match app.clock {
            Some(c) => format::market_phase(c),
            None => "market ?",
        }
    }
}

/// Candidate headers, most complete first.
fn variants(app: &App) -> Vec<Vec<(String, Style)>> {
    let t = &app.theme;
    let base = t.header;
    let clock = match app.clock {
        Some(c) => format!("{} IST", format::ist_hms(c.timestamp_millis())),
        None => "--:--:-- IST".into(),
    };
    let account = app.health.account.trim();
    let account =
        (!account.is_empty() && !app.source.contains(account)).then(|| account.to_string());
    let warn_long = app
        .host_tz
        .as_ref()
        .map(|z| format!("⚠ host zone {z}, times shown in IST"));
    let warn_short = app.host_tz.as_ref().map(|z| format!("⚠ host {z}"));
    let warn_style = base.patch(t.warn);
    let paused = app.paused().then(|| {
        (
            "PAUSED".to_string(),
            base.add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    });
    // Short source: "kite" from "kite (account X)"; the simulator must stay recognisable.
    let short_src = if app.simulator {
        "simulator".to_string()
    } else {
        app.source
            .split(" (")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let build = |src: Option<&String>, acct: bool, ph: bool, warn: &Option<String>| {
        let mut v = vec![("tickmux".to_string(), base.add_modifier(Modifier::BOLD))];
        if let Some(s) = src {
            v.push((s.clone(), base));
        }
        if acct && let Some(a) = &account {
            v.push((a.clone(), base));
        }
        v.push((clock.clone(), base));
        if ph {
            v.push((phase(app).to_string(), base));
        }
        if let Some(w) = warn {
            v.push((w.clone(), warn_style));
        }
        if let Some(p) = &paused {
            v.push(p.clone());
        }
        v
    };
    let src = Some(&app.source);
    let short = Some(&short_src);
    vec![
        build(src, true, true, &warn_long),
        build(src, true, true, &warn_short),
        build(src, false, true, &warn_short),
        build(short, false, true, &warn_short),
        build(short, false, false, &warn_short),
        build(None, false, false, &warn_short),
    ]
}

fn width(v: &[(String, Style)]) -> usize {
    v.iter().map(|(s, _)| format::width(s)).sum::<usize>()
        + format::width(SEP) * v.len().saturating_sub(1)
        + 1
}

/// Render the header.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    buf.set_style(area, app.theme.header);
    let w = usize::from(area.width);
    let vs = variants(app);
    let pick = vs
        .iter()
        .find(|v| width(v) <= w)
        .unwrap_or_else(|| &vs[vs.len() - 1]);
    let mut spans = vec![Span::styled(" ", app.theme.header)];
    for (i, (s, st)) in pick.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(SEP, app.theme.header));
        }
        spans.push(Span::styled(s.clone(), *st));
    }
    put_line(Line::from(spans), area, buf);
}

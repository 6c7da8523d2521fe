//! Semantic styles. Views ask for a role (up, down, stale, ...), never for a colour, so the
//! colour theme and the NO_COLOR theme are one switch.
//!
//! The mono theme sets no colour at all (cells stay `Color::Reset`) and uses only modifiers:
//! with crossterm 0.29 and NO_COLOR, a colour command after REVERSED emits a bare `CSI m` that
//! wipes the reverse video, so under NO_COLOR the selection would vanish.

use ratatui::style::{Color, Modifier, Style};

/// Styles by role.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    /// True for the NO_COLOR theme.
    pub mono: bool,
    /// Price up (change ≥ 0 or last tick up).
    pub up: Style,
    /// Price down.
    pub down: Style,
    /// Just changed up (first ~600 ms).
    pub flash_up: Style,
    /// Just changed down.
    pub flash_down: Style,
    /// Stale, closed or waiting data: must never look live.
    pub stale: Style,
    /// Warnings (backoff, stale feed, host zone).
    pub warn: Style,
    /// Errors (token invalid, attempts exhausted).
    pub error: Style,
    /// Healthy (live).
    pub ok: Style,
    /// Selected row.
    pub selected: Style,
    /// Header bar.
    pub header: Style,
    /// Secondary text (labels, ages).
    pub dim: Style,
    /// Titles, active tab, keys in the footer.
    pub accent: Style,
    /// Borders.
    pub border: Style,
}

impl Theme {
    /// Colour theme (dark or light terminals: only the 8 base colours plus dark grey).
    pub fn color() -> Theme {
        let bold = Modifier::BOLD;
        Theme {
            mono: false,
            up: Style::new().fg(Color::Green),
            down: Style::new().fg(Color::Red),
            flash_up: Style::new()
                .fg(Color::Black)
                .bg(Color::Green)
                .add_modifier(bold),
            flash_down: Style::new()
                .fg(Color::Black)
                .bg(Color::Red)
                .add_modifier(bold),
            stale: Style::new().fg(Color::DarkGray).add_modifier(Modifier::DIM),
            warn: Style::new().fg(Color::Yellow).add_modifier(bold),
            error: Style::new().fg(Color::Red).add_modifier(bold),
            ok: Style::new().fg(Color::Green).add_modifier(bold),
            selected: Style::new().bg(Color::DarkGray).add_modifier(bold),
            header: Style::new()
                .fg(Color::White)
                .bg(Color::Blue)
                .add_modifier(bold),
            dim: Style::new().fg(Color::DarkGray),
            accent: Style::new().fg(Color::Cyan).add_modifier(bold),
            border: Style::new().fg(Color::DarkGray),
        }
    }

    /// NO_COLOR theme: modifiers only.
    pub fn mono() -> Theme {
        let m = |m: Modifier| Style::new().add_modifier(m);
        Theme {
            mono: true,
            up: m(Modifier::BOLD),
            down: Style::new(),
            flash_up: m(Modifier::BOLD | Modifier::UNDERLINED),
            flash_down: m(Modifier::UNDERLINED),
            stale: m(Modifier::DIM),
            warn: m(Modifier::BOLD),
            error: m(Modifier::BOLD | Modifier::REVERSED),
            ok: m(Modifier::BOLD),
            selected: m(Modifier::REVERSED),
            header: m(Modifier::REVERSED),
            dim: m(Modifier::DIM),
            accent: m(Modifier::BOLD),
            border: Style::new(),
        }
    }

    /// The theme for NO_COLOR (`mono`) or not.
    pub fn pick(mono: bool) -> Theme {
        if mono { Theme::mono() } else { Theme::color() }
    }
}

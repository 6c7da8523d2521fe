//! The one vocabulary of things a user can do: keys map to actions (keymap), actions drive the
//! app (`App::update`), and `[keys]` in config.toml rebinds them by [`Action::name`].

/// A user action. The keymap turns key chords into these; `App::update` interprets them per
/// context (e.g. `Confirm` submits the prompt or answers "yes" in a confirm bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Quit tickmux.
    Quit,
    /// Show or hide the key help popup.
    Help,
    /// Select the previous row.
    Up,
    /// Select the next row.
    Down,
    /// Move the selection up one page.
    PageUp,
    /// Move the selection down one page.
    PageDown,
    /// Select the first row.
    Home,
    /// Select the last row.
    End,
    /// Next tab (LTP → Quote → Depth).
    NextTab,
    /// Previous tab.
    PrevTab,
    /// Open the subscribe prompt.
    Subscribe,
    /// Unsubscribe the selected instrument.
    Unsubscribe,
    /// Unsubscribe everything (asks first; the upstream session stays).
    UnsubscribeAll,
    /// Drop and reopen the upstream connection (asks first).
    ForceReconnect,
    /// Change the selected instrument's mode (ltp → quote → depth → ltp); in the prompt, the
    /// mode of the instruments being added.
    CycleMode,
    /// Filter rows by symbol.
    Filter,
    /// Cycle the sort order.
    Sort,
    /// Freeze the display (the engine keeps running).
    Pause,
    /// Open the fault-injection menu (simulator only).
    FaultMenu,
    /// Submit / answer yes.
    Confirm,
    /// Close / answer no / clear the filter.
    Cancel,
}

impl Action {
    /// Every action, in help order.
    pub const ALL: &'static [Action] = &[
        Action::Help,
        Action::Quit,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Home,
        Action::End,
        Action::NextTab,
        Action::PrevTab,
        Action::Subscribe,
        Action::Unsubscribe,
        Action::UnsubscribeAll,
        Action::ForceReconnect,
        Action::CycleMode,
        Action::Filter,
        Action::Sort,
        Action::Pause,
        Action::FaultMenu,
        Action::Confirm,
        Action::Cancel,
    ];

    /// snake_case name, as used in `[keys]` of config.toml.
    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Home => "home",
            Action::End => "end",
            Action::NextTab => "next_tab",
            Action::PrevTab => "prev_tab",
            Action::Subscribe => "subscribe",
            Action::Unsubscribe => "unsubscribe",
            Action::UnsubscribeAll => "unsubscribe_all",
            Action::ForceReconnect => "force_reconnect",
            Action::CycleMode => "cycle_mode",
            Action::Filter => "filter",
            Action::Sort => "sort",
            Action::Pause => "pause",
            Action::FaultMenu => "fault_menu",
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
        }
    }

    /// The action with this name (case-insensitive; `-` accepted for `_`).
    pub fn from_name(s: &str) -> Option<Action> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Action::ALL.iter().copied().find(|a| a.name() == s)
    }

    /// Short help text (fits the help popup's column at 80x24).
    pub fn description(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "this help",
            Action::Up => "select previous row",
            Action::Down => "select next row",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Home => "first row",
            Action::End => "last row",
            Action::NextTab => "next tab",
            Action::PrevTab => "previous tab",
            Action::Subscribe => "subscribe (prompt)",
            Action::Unsubscribe => "unsubscribe selected",
            Action::UnsubscribeAll => "unsubscribe all",
            Action::ForceReconnect => "force reconnect",
            Action::CycleMode => "mode ltp→quote→depth",
            Action::Filter => "filter by symbol",
            Action::Sort => "cycle sort order",
            Action::Pause => "pause display",
            Action::FaultMenu => "inject a fault (sim)",
            Action::Confirm => "confirm / yes",
            Action::Cancel => "cancel / no / clear",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(*a));
            assert!(seen.insert(a.name()));
        }
        assert_eq!(seen.len(), 21);
        assert_eq!(
            Action::from_name("Force-Reconnect"),
            Some(Action::ForceReconnect)
        );
        assert_eq!(Action::from_name("nope"), None);
    }
}

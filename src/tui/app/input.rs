//! Keys and actions: what each does in each context, and the engine commands it emits.

use super::faults::FAULT_MENU;
use super::{App, Cmd, Confirming, Overlay, Tab};
use crate::model::{Instrument, Mode};
use crate::tui::action::Action;
use crate::tui::keymap::{Context, Target};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::sync::Arc;

fn next_mode(m: Mode) -> Mode {
    match m {
        Mode::Ltp => Mode::Quote,
        Mode::Quote => Mode::Depth,
        Mode::Depth => Mode::Ltp,
    }
}

/// Split prompt input into symbols and an optional trailing mode word.
fn parse_prompt(text: &str) -> Result<(Vec<String>, Option<Mode>), String> {
    let mut parts: Vec<String> = text
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let mut mode = None;
    if let Some(last) = parts.last_mut() {
        let (head, word) = match last.rsplit_once(char::is_whitespace) {
            Some((h, w)) => (h.trim().to_string(), w.to_string()),
            None => (String::new(), last.clone()),
        };
        let lw = word.to_ascii_lowercase();
        if matches!(lw.as_str(), "ltp" | "quote" | "depth" | "full") {
            mode = lw.parse::<Mode>().ok();
            *last = head;
            if last.is_empty() {
                parts.pop();
            }
        }
    }
    if parts.is_empty() {
        return Err("type one or more EXCHANGE:SYMBOL, separated by commas".into());
    }
    Ok((parts, mode))
}

impl App {
    /// Handle a key (press events only): keymap lookup in the current context; in the prompt
    /// and filter, unbound printable keys edit the text (Backspace deletes, Ctrl+U clears).
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if key.kind != KeyEventKind::Press {
            return Vec::new();
        }
        let ctx = self.context();
        match self.keymap.lookup_target(ctx, &key) {
            Some(Target::Action(a)) => self.update(a),
            Some(Target::Tab(i)) => {
                if ctx == Context::Normal {
                    self.set_tab(Tab::ALL[i.min(2)]);
                }
                Vec::new()
            }
            Some(Target::Fault(i)) => self.pick_fault(i),
            None if ctx.is_text() => {
                self.edit_text(&key);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn edit_text(&mut self, key: &KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let text = if self.overlay == Overlay::Prompt {
            &mut self.prompt.text
        } else {
            &mut self.filter
        };
        match key.code {
            KeyCode::Char('u') if ctrl => text.clear(),
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            _ => return,
        }
        if self.overlay == Overlay::Filter {
            // Narrow as you type.
            self.reorder();
        } else {
            self.prompt.error = None;
        }
    }

    /// Apply an action in the current context.
    pub fn update(&mut self, action: Action) -> Vec<Cmd> {
        let ctx = self.context();
        match (ctx, action) {
            (_, Action::Quit) => {
                self.quit = true;
                vec![Cmd::Quit]
            }
            (Context::Normal, Action::Help) => {
                self.overlay = Overlay::Help;
                Vec::new()
            }
            (Context::Help, Action::Help | Action::Cancel) => {
                self.overlay = Overlay::None;
                Vec::new()
            }
            (Context::Normal, Action::Cancel) => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.reorder();
                }
                Vec::new()
            }
            (Context::Prompt, Action::Cancel) => {
                self.overlay = Overlay::None;
                self.prompt.error = None;
                Vec::new()
            }
            (Context::Prompt, Action::Confirm) => self.submit_prompt(),
            (Context::Prompt, Action::CycleMode) => {
                self.prompt.mode = next_mode(self.prompt.mode);
                Vec::new()
            }
            (Context::Confirm, Action::Cancel) => {
                self.overlay = Overlay::None;
                Vec::new()
            }
            (Context::Confirm, Action::Confirm) => self.confirmed(),
            (Context::FaultMenu, Action::Cancel) => {
                self.overlay = Overlay::None;
                Vec::new()
            }
            (Context::Filter, Action::Confirm) => {
                self.overlay = Overlay::None;
                Vec::new()
            }
            (Context::Filter, Action::Cancel) => {
                self.overlay = Overlay::None;
                self.filter.clear();
                self.reorder();
                Vec::new()
            }
            (Context::Normal, a) => self.normal(a),
            _ => Vec::new(),
        }
    }

    fn normal(&mut self, a: Action) -> Vec<Cmd> {
        let n = self.order.len();
        let vp = self.viewport.max(1);
        let last = n.saturating_sub(1);
        let sel = self.selected;
        match a {
            Action::Up => self.select(sel.saturating_sub(1)),
            Action::Down => self.select((sel + 1).min(last)),
            Action::PageUp => self.select(sel.saturating_sub(vp)),
            Action::PageDown => self.select((sel + vp).min(last)),
            Action::Home => self.select(0),
            Action::End => self.select(last),
            Action::NextTab => self.set_tab(Tab::ALL[(self.tab.index() + 1) % 3]),
            Action::PrevTab => self.set_tab(Tab::ALL[(self.tab.index() + 2) % 3]),
            Action::Subscribe => {
                self.prompt.text.clear();
                self.prompt.error = None;
                self.overlay = Overlay::Prompt;
            }
            Action::Unsubscribe => return self.unsubscribe_selected(),
            Action::UnsubscribeAll => {
                if self.items.is_empty() {
                    self.log("watchlist", "nothing to unsubscribe");
                } else {
                    self.overlay = Overlay::Confirm(Confirming::UnsubscribeAll);
                }
            }
            Action::ForceReconnect => self.overlay = Overlay::Confirm(Confirming::ForceReconnect),
            Action::CycleMode => return self.cycle_selected_mode(),
            Action::Filter => self.overlay = Overlay::Filter,
            Action::Sort => {
                self.sort = self.sort.next();
                if !self.sort.needs_data() {
                    self.sort_vals.clear();
                }
                self.reorder();
            }
            Action::Pause => {
                self.paused = !self.paused;
                self.needs_refresh = true;
            }
            Action::FaultMenu => {
                if self.simulator {
                    self.overlay = Overlay::FaultMenu;
                } else {
                    self.log("faults", "fault injection needs the built-in simulator");
                }
            }
            Action::Quit | Action::Help | Action::Confirm | Action::Cancel => {}
        }
        Vec::new()
    }

    fn set_tab(&mut self, t: Tab) {
        self.tab = t;
        self.needs_refresh = true;
    }

    fn save(&self) -> Cmd {
        Cmd::SaveWatchlist(self.items.clone())
    }

    fn submit_prompt(&mut self) -> Vec<Cmd> {
        let (symbols, mode) = match parse_prompt(&self.prompt.text) {
            Ok(v) => v,
            Err(e) => {
                self.prompt.error = Some(e);
                return Vec::new();
            }
        };
        let (ok, errs) = self.master.resolve_all(symbols.iter().map(|s| s.as_str()));
        if !errs.is_empty() {
            // All or nothing: a typo must not half-apply a list.
            self.prompt.error = Some(errs.join("; "));
            return Vec::new();
        }
        let mode = mode.unwrap_or(self.prompt.mode);
        let mut list: Vec<Arc<Instrument>> = Vec::new();
        for i in ok {
            if !list.iter().any(|x| x.key == i.key) {
                list.push(i);
            }
        }
        for i in &list {
            self.add(i.clone(), mode);
        }
        self.reorder();
        if let Some(pos) = self
            .order
            .iter()
            .position(|&i| self.insts[i].key == list[0].key)
        {
            self.select(pos);
        }
        let names: Vec<String> = list.iter().map(|i| i.display_name()).collect();
        self.log("subscribe", format!("{} in {mode} mode", names.join(", ")));
        self.overlay = Overlay::None;
        self.prompt.text.clear();
        self.prompt.error = None;
        vec![Cmd::Subscribe(list, mode), self.save()]
    }

    fn unsubscribe_selected(&mut self) -> Vec<Cmd> {
        let Some(&i) = self.order.get(self.selected) else {
            return Vec::new();
        };
        let inst = self.insts.remove(i);
        self.items.remove(i);
        self.cache.remove(&inst.key);
        self.sort_vals.remove(&inst.key);
        // The removed row's successor takes its place in the selection.
        self.order.clear();
        self.reorder();
        self.log("unsubscribe", inst.display_name());
        vec![Cmd::Unsubscribe(vec![inst.key]), self.save()]
    }

    fn cycle_selected_mode(&mut self) -> Vec<Cmd> {
        let Some(&i) = self.order.get(self.selected) else {
            return Vec::new();
        };
        let mode = next_mode(self.items[i].mode);
        self.items[i].mode = mode;
        let inst = self.insts[i].clone();
        self.log("mode", format!("{} → {mode}", inst.display_name()));
        self.needs_refresh = true;
        vec![Cmd::Subscribe(vec![inst], mode), self.save()]
    }

    fn confirmed(&mut self) -> Vec<Cmd> {
        let Overlay::Confirm(what) = self.overlay else {
            return Vec::new();
        };
        self.overlay = Overlay::None;
        match what {
            Confirming::UnsubscribeAll => {
                let n = self.items.len();
                self.items.clear();
                self.insts.clear();
                self.order.clear();
                self.cache.clear();
                self.sort_vals.clear();
                self.selected = 0;
                self.offset = 0;
                self.reorder();
                self.log(
                    "unsubscribe",
                    format!("unsubscribed all {n} instruments (upstream session kept)"),
                );
                vec![Cmd::UnsubscribeAll, self.save()]
            }
            Confirming::ForceReconnect => {
                self.log("reconnect", "forced reconnect requested");
                vec![Cmd::ForceReconnect]
            }
        }
    }

    fn pick_fault(&mut self, i: usize) -> Vec<Cmd> {
        if self.overlay != Overlay::FaultMenu || !self.simulator {
            return Vec::new();
        }
        let Some(item) = FAULT_MENU.get(i) else {
            return Vec::new();
        };
        self.overlay = Overlay::None;
        match item.make {
            Some(make) => {
                self.log("fault", format!("injected: {}", item.label));
                vec![Cmd::InjectFault(make(), item.duration())]
            }
            None => {
                self.log("fault", "cleared all faults");
                vec![Cmd::ClearFaults]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_parsing() {
        let (s, m) = parse_prompt("NSE:INFY, NSE:TCS depth").unwrap();
        assert_eq!(s, ["NSE:INFY", "NSE:TCS"]);
        assert_eq!(m, Some(Mode::Depth));
        let (s, m) = parse_prompt("NSE:NIFTY 50").unwrap();
        assert_eq!(s, ["NSE:NIFTY 50"]);
        assert_eq!(m, None);
        let (s, m) = parse_prompt("NSE:INFY, ltp").unwrap();
        assert_eq!(s, ["NSE:INFY"]);
        assert_eq!(m, Some(Mode::Ltp));
        assert!(parse_prompt(" , depth").is_err());
    }
}

//! Key bindings: one table of (contexts, chords, target, help text, footer slot). Lookup, the
//! `?` help popup, the footer and the fault menu are all generated from it, so they cannot
//! drift. `[keys]` in config.toml rebinds actions by name (`subscribe = ["x", "ctrl+n"]`); a bad
//! entry is reported and the default kept, never fatal.
//!
//! Fixed on purpose: Ctrl+C always quits, and in the text contexts (prompt, filter) Enter, Esc,
//! Tab and printable characters are not rebindable (they edit the text).

use super::action::Action;
use super::app::faults::FAULT_MENU;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which part of the UI has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// The watchlist / tabs.
    Normal,
    /// The help popup.
    Help,
    /// The subscribe prompt (text entry).
    Prompt,
    /// A yes/no confirm bar.
    Confirm,
    /// The simulator's fault menu.
    FaultMenu,
    /// Typing a filter (text entry).
    Filter,
}

impl Context {
    /// Every context.
    pub const ALL: &'static [Context] = &[
        Context::Normal,
        Context::Help,
        Context::Prompt,
        Context::Confirm,
        Context::FaultMenu,
        Context::Filter,
    ];

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Context::Normal => "normal",
            Context::Help => "help",
            Context::Prompt => "prompt",
            Context::Confirm => "confirm",
            Context::FaultMenu => "fault menu",
            Context::Filter => "filter",
        }
    }

    /// Text-entry contexts: printable keys edit text there.
    pub fn is_text(self) -> bool {
        matches!(self, Context::Prompt | Context::Filter)
    }
}

/// A key with modifiers, normalised so that `D` and `Shift+d` are the same chord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chord {
    /// Key code (characters carry their case; Shift+Tab is `BackTab`).
    pub code: KeyCode,
    /// Control / Alt (Shift only for non-character keys).
    pub mods: KeyModifiers,
}

/// Named keys: code, how help shows it, names accepted in config.
const KEY_NAMES: &[(KeyCode, &str, &[&str])] = &[
    (KeyCode::Char(' '), "Space", &["space", "spc"]),
    (KeyCode::Enter, "Enter", &["enter", "return", "ret"]),
    (KeyCode::Esc, "Esc", &["esc", "escape"]),
    (KeyCode::Tab, "Tab", &["tab"]),
    (KeyCode::BackTab, "Shift+Tab", &["backtab"]),
    (KeyCode::Up, "↑", &["up"]),
    (KeyCode::Down, "↓", &["down"]),
    (KeyCode::Left, "←", &["left"]),
    (KeyCode::Right, "→", &["right"]),
    (KeyCode::PageUp, "PgUp", &["pgup", "pageup", "page_up"]),
    (
        KeyCode::PageDown,
        "PgDn",
        &["pgdn", "pgdown", "pagedown", "page_down"],
    ),
    (KeyCode::Home, "Home", &["home"]),
    (KeyCode::End, "End", &["end"]),
    (KeyCode::Delete, "Del", &["delete", "del"]),
    (KeyCode::Insert, "Ins", &["insert", "ins"]),
    (KeyCode::Backspace, "Bksp", &["backspace", "bksp"]),
];

impl Chord {
    /// A chord from a code and modifiers, normalised.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Chord {
        let mut mods = mods & (KeyModifiers::SHIFT | KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match code {
            KeyCode::Char(c) => {
                // Terminals disagree on whether Shift is reported with an upper-case letter;
                // the case of the character already says it.
                let shifted = mods.contains(KeyModifiers::SHIFT);
                mods.remove(KeyModifiers::SHIFT);
                if mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else if shifted && c.is_ascii_lowercase() {
                    KeyCode::Char(c.to_ascii_uppercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Chord { code, mods }
    }

    /// A plain key.
    pub const fn key(code: KeyCode) -> Chord {
        Chord {
            code,
            mods: KeyModifiers::NONE,
        }
    }

    /// A plain character.
    pub const fn ch(c: char) -> Chord {
        Chord::key(KeyCode::Char(c))
    }

    /// Ctrl + a lower-case character.
    pub const fn ctrl(c: char) -> Chord {
        Chord {
            code: KeyCode::Char(c),
            mods: KeyModifiers::CONTROL,
        }
    }

    /// The chord of a key event.
    pub fn from_event(k: &KeyEvent) -> Chord {
        Chord::new(k.code, k.modifiers)
    }

    /// Parse a config string: `q`, `D`, `?`, `+`, `space`, `enter`, `esc`, `tab`, `shift+tab`,
    /// `up`, `pgdn`, `home`, `delete`, `f5`, `ctrl+n`, `alt+x`. Modifier and key names are
    /// case-insensitive; a single character is taken as typed (`D` is Shift+d).
    pub fn parse(s: &str) -> Result<Chord, String> {
        let raw = s.trim();
        if raw.is_empty() {
            return Err("empty key".into());
        }
        // Split "mod+mod+key", where the key itself may be "+".
        let (mods_part, key_part) = if raw == "+" {
            ("", "+")
        } else if let Some(m) = raw.strip_suffix("++") {
            (m, "+")
        } else {
            match raw.rsplit_once('+') {
                Some((m, k)) if !k.is_empty() => (m, k),
                _ => ("", raw),
            }
        };
        let mut mods = KeyModifiers::NONE;
        for m in mods_part.split('+').filter(|m| !m.is_empty()) {
            match m.trim().to_ascii_lowercase().as_str() {
                "ctrl" | "control" => mods |= KeyModifiers::CONTROL,
                "alt" | "meta" => mods |= KeyModifiers::ALT,
                "shift" => mods |= KeyModifiers::SHIFT,
                other => return Err(format!("{raw:?}: unknown modifier {other:?}")),
            }
        }
        let mut chars = key_part.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => {
                let k = key_part.to_ascii_lowercase();
                let named = KEY_NAMES
                    .iter()
                    .find(|(_, _, aliases)| aliases.contains(&k.as_str()))
                    .map(|(code, _, _)| *code);
                let f = k
                    .strip_prefix('f')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=24).contains(n))
                    .map(KeyCode::F);
                named
                    .or(f)
                    .ok_or_else(|| format!("{raw:?}: unknown key {key_part:?}"))?
            }
        };
        Ok(Chord::new(code, mods))
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl+")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt+")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("Shift+")?;
        }
        let ctrl_or_alt = self
            .mods
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match self.code {
            KeyCode::Char(c) if c != ' ' && ctrl_or_alt => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCode::Char(c) if c != ' ' => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            code => match KEY_NAMES.iter().find(|(c, _, _)| *c == code) {
                Some((_, shown, _)) => f.write_str(shown),
                None => write!(f, "{code:?}"),
            },
        }
    }
}

/// What a binding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An action.
    Action(Action),
    /// Jump to a tab (0 = LTP, 1 = Quote, 2 = Depth).
    Tab(usize),
    /// Pick entry `i` of the fault menu (`app::faults::FAULT_MENU`).
    Fault(usize),
}

impl Target {
    fn name(self) -> String {
        match self {
            Target::Action(a) => a.name().to_string(),
            Target::Tab(i) => format!("tab {}", i + 1),
            Target::Fault(i) => format!(
                "fault {:?}",
                FAULT_MENU.get(i).map(|f| f.label).unwrap_or("?")
            ),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Contexts where it applies.
    pub contexts: &'static [Context],
    /// Keys (the first one is shown in the footer).
    pub chords: Vec<Chord>,
    /// What it does.
    pub target: Target,
    /// Help text.
    pub help: &'static str,
    /// Footer slot: (priority, lower first; short label).
    pub footer: Option<(u8, &'static str)>,
    /// Whether `[keys]` may change it.
    pub rebindable: bool,
}

const N: &[Context] = &[Context::Normal];
const HELP: &[Context] = &[Context::Help];
const YES_NO: &[Context] = &[Context::Confirm];
const PROMPT: &[Context] = &[Context::Prompt];
const FILTER: &[Context] = &[Context::Filter];
const FAULTS: &[Context] = &[Context::FaultMenu];

/// A binding with its own help text; footer `(priority, label)`.
fn b(
    contexts: &'static [Context],
    chords: &[Chord],
    target: Target,
    help: &'static str,
    footer: Option<(u8, &'static str)>,
) -> Binding {
    Binding {
        contexts,
        chords: chords.to_vec(),
        target,
        help,
        footer,
        rebindable: !contexts.iter().any(|c| c.is_text()),
    }
}

/// A binding documented by its action's description.
fn a(
    ctx: &'static [Context],
    chords: &[Chord],
    act: Action,
    f: Option<(u8, &'static str)>,
) -> Binding {
    b(ctx, chords, Target::Action(act), act.description(), f)
}

fn default_bindings() -> Vec<Binding> {
    use Action as A;
    use KeyCode as K;
    let (key, ch, t) = (Chord::key, Chord::ch, Target::Action);
    let f = |p: u8, l: &'static str| Some((p, l));
    let mut v = vec![
        a(N, &[ch('?')], A::Help, f(0, "help")),
        a(N, &[ch('q')], A::Quit, f(1, "quit")),
        a(N, &[key(K::Up), ch('k')], A::Up, None),
        a(N, &[key(K::Down), ch('j')], A::Down, None),
        a(N, &[key(K::PageUp)], A::PageUp, None),
        a(N, &[key(K::PageDown)], A::PageDown, None),
        a(N, &[key(K::Home), ch('g')], A::Home, None),
        a(N, &[key(K::End), ch('G')], A::End, None),
        a(
            N,
            &[key(K::Tab), key(K::Right), ch('l')],
            A::NextTab,
            f(9, "tab"),
        ),
        a(
            N,
            &[key(K::BackTab), key(K::Left), ch('h')],
            A::PrevTab,
            None,
        ),
        b(N, &[ch('1')], Target::Tab(0), "LTP tab", None),
        b(N, &[ch('2')], Target::Tab(1), "Quote tab", None),
        b(N, &[ch('3')], Target::Tab(2), "Depth tab", None),
        a(N, &[ch('a'), ch('+')], A::Subscribe, f(2, "add")),
        a(N, &[ch('d'), key(K::Delete)], A::Unsubscribe, f(3, "del")),
        a(N, &[ch('D')], A::UnsubscribeAll, f(11, "del all")),
        a(N, &[ch('R')], A::ForceReconnect, f(10, "reconnect")),
        a(N, &[ch('m')], A::CycleMode, f(4, "mode")),
        a(N, &[ch('/')], A::Filter, f(6, "filter")),
        a(N, &[ch('s')], A::Sort, f(7, "sort")),
        a(N, &[ch('p'), ch(' ')], A::Pause, f(8, "pause")),
        a(N, &[ch('f')], A::FaultMenu, f(5, "faults")),
        b(N, &[key(K::Esc)], t(A::Cancel), "clear filter", None),
        a(HELP, &[ch('?')], A::Help, None),
        b(
            HELP,
            &[key(K::Esc), ch('q')],
            t(A::Cancel),
            "close",
            f(0, "close"),
        ),
        a(YES_NO, &[ch('y'), key(K::Enter)], A::Confirm, f(0, "yes")),
        a(YES_NO, &[ch('n'), key(K::Esc)], A::Cancel, f(1, "no")),
        // Text entry: fixed keys (printable ones type).
        b(
            PROMPT,
            &[key(K::Enter)],
            t(A::Confirm),
            "prompt: subscribe",
            f(0, "subscribe"),
        ),
        b(
            PROMPT,
            &[key(K::Tab)],
            t(A::CycleMode),
            "prompt: change mode",
            f(1, "mode"),
        ),
        b(
            PROMPT,
            &[key(K::Esc)],
            t(A::Cancel),
            "prompt: cancel",
            f(2, "cancel"),
        ),
        b(
            FILTER,
            &[key(K::Enter)],
            t(A::Confirm),
            "filter: keep",
            f(0, "keep"),
        ),
        b(
            FILTER,
            &[key(K::Esc)],
            t(A::Cancel),
            "filter: clear",
            f(1, "clear"),
        ),
        b(
            FAULTS,
            &[key(K::Esc), ch('q'), ch('f')],
            t(A::Cancel),
            "close",
            f(0, "close"),
        ),
    ];
    for (i, item) in FAULT_MENU.iter().enumerate() {
        v.push(b(
            FAULTS,
            &[ch(item.key)],
            Target::Fault(i),
            item.label,
            None,
        ));
    }
    // Ctrl+C quits from anywhere, whatever the config says.
    v.push(Binding {
        rebindable: false,
        ..b(
            Context::ALL,
            &[Chord::ctrl('c')],
            t(A::Quit),
            A::Quit.description(),
            None,
        )
    });
    v
}

/// The key table.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        Keymap {
            bindings: default_bindings(),
        }
    }
}

impl Keymap {
    /// The defaults with `[keys]` overrides (action name → chords) applied. Each entry replaces
    /// that action's keys in every non-text context it is bound in. Returns the human-readable
    /// problems (unknown action, unparsable key, key already taken); those entries keep their
    /// defaults.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> (Keymap, Vec<String>) {
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<Action, Vec<Chord>> = BTreeMap::new();
        let defaults = Keymap::default();
        // Every action has a rebindable binding (keymap tests check it), so any name works.
        for (name, keys) in overrides {
            let Some(act) = Action::from_name(name) else {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                errors.push(format!(
                    "[keys] {name:?}: unknown action (known: {})",
                    known.join(", ")
                ));
                continue;
            };
            if keys.is_empty() {
                errors.push(format!("[keys] {name}: no keys given; keeping the default"));
                continue;
            }
            match keys
                .iter()
                .map(|k| Chord::parse(k))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(mut chords) => {
                    chords.dedup();
                    wanted.insert(act, chords);
                }
                Err(e) => errors.push(format!("[keys] {name}: {e}; keeping the default")),
            }
        }
        // Apply, then drop every override that collides with another binding, until stable
        // (defaults never collide, so this ends).
        loop {
            let km = defaults.apply(&wanted);
            let clashes = km.clashes();
            let mut dropped = BTreeSet::new();
            for (ctx, chord, t1, t2) in clashes {
                for (mine, other) in [(t1, t2), (t2, t1)] {
                    if let Target::Action(act) = mine
                        && wanted.contains_key(&act)
                        && dropped.insert(act)
                    {
                        errors.push(format!(
                            "[keys] {}: {chord} is already bound to {} in the {} context; \
                             keeping the default",
                            act.name(),
                            other.name(),
                            ctx.name()
                        ));
                    }
                }
            }
            if dropped.is_empty() {
                return (km, errors);
            }
            for act in dropped {
                wanted.remove(&act);
            }
        }
    }

    fn apply(&self, wanted: &BTreeMap<Action, Vec<Chord>>) -> Keymap {
        let mut km = self.clone();
        for b in km.bindings.iter_mut().filter(|b| b.rebindable) {
            if let Target::Action(act) = b.target
                && let Some(ch) = wanted.get(&act)
            {
                b.chords = ch.clone();
            }
        }
        km
    }

    /// Chords bound to two different targets in one context.
    fn clashes(&self) -> Vec<(Context, Chord, Target, Target)> {
        let mut out = Vec::new();
        for &ctx in Context::ALL {
            let mut seen: Vec<(Chord, Target)> = Vec::new();
            for b in self.bindings.iter().filter(|b| b.contexts.contains(&ctx)) {
                for &c in &b.chords {
                    if let Some((_, t)) = seen.iter().find(|(sc, t)| *sc == c && *t != b.target) {
                        out.push((ctx, c, *t, b.target));
                    } else {
                        seen.push((c, b.target));
                    }
                }
            }
        }
        out
    }

    /// The binding for a key in a context.
    pub fn lookup_target(&self, ctx: Context, key: &KeyEvent) -> Option<Target> {
        let chord = Chord::from_event(key);
        self.bindings
            .iter()
            .find(|b| b.contexts.contains(&ctx) && b.chords.contains(&chord))
            .map(|b| b.target)
    }

    /// The action for a key in a context (tab and fault-menu picks are not actions: see
    /// [`Keymap::lookup_target`]).
    pub fn lookup(&self, ctx: Context, key: &KeyEvent) -> Option<Action> {
        match self.lookup_target(ctx, key)? {
            Target::Action(a) => Some(a),
            _ => None,
        }
    }

    /// Every binding.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Keys of a binding as shown: "a +", "↑ k".
    pub fn keys_text(b: &Binding) -> String {
        let v: Vec<String> = b.chords.iter().map(|c| c.to_string()).collect();
        v.join(" ")
    }

    /// Rows of the `?` popup: normal keys, then the yes/no and prompt keys (fault-menu picks
    /// are listed by the menu itself; Ctrl+C is folded into quit).
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        let mut rows: Vec<(String, &'static str)> = Vec::new();
        let ctrl_c = Chord::ctrl('c');
        for ctx in [Context::Normal, Context::Confirm, Context::Prompt] {
            // Bindings for every context (Ctrl+C) are folded into their normal-context row.
            let own = |b: &&Binding| b.contexts.len() == 1 && b.contexts[0] == ctx;
            for b in self.bindings.iter().filter(own) {
                let mut keys = Keymap::keys_text(b);
                if b.target == Target::Action(Action::Quit) && !b.chords.contains(&ctrl_c) {
                    keys.push_str(" Ctrl+C");
                }
                if !rows.iter().any(|(k, h)| *k == keys && *h == b.help) {
                    rows.push((keys, b.help));
                }
            }
        }
        rows
    }

    /// Footer entries for a context with their targets, most important first.
    pub fn footer_entries(&self, ctx: Context) -> Vec<(String, &'static str, Target)> {
        let mut v: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.contexts.contains(&ctx) && !b.chords.is_empty() && b.footer.is_some())
            .collect();
        v.sort_by_key(|b| b.footer.map(|f| f.0));
        v.iter()
            .filter_map(|b| Some((b.chords[0].to_string(), b.footer?.1, b.target)))
            .collect()
    }

    /// Footer entries for a context (key, short label), most important first.
    pub fn footer(&self, ctx: Context) -> Vec<(String, &'static str)> {
        let v = self.footer_entries(ctx);
        v.into_iter().map(|(k, l, _)| (k, l)).collect()
    }
}

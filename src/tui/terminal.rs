//! Terminal lifecycle: the TTY check, raw mode + alternate screen (+ mouse capture only when
//! asked), and one idempotent restore used by the guard's `Drop`, the panic hook and the
//! signal path of the event loop.

use crossterm::cursor::Show;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, IsTerminal as _, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// The terminal the TUI draws on.
pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// True while raw mode / the alternate screen are on (what restore must undo).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// True while mouse capture is on.
static MOUSE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hook so the event loop stops drawing on a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);
static PANIC_NOTIFY: Notify = Notify::const_new();
static HOOK: Once = Once::new();

/// Refuse to start without a terminal on both stdin and stdout; the message names the
/// headless surfaces instead.
pub fn check_tty() -> Result<(), String> {
    let (input, output) = (io::stdin().is_terminal(), io::stdout().is_terminal());
    if input && output {
        return Ok(());
    }
    let which = match (input, output) {
        (false, false) => "stdin and stdout are not terminals",
        (false, true) => "stdin is not a terminal",
        _ => "stdout is not a terminal",
    };
    Err(format!(
        "the TUI needs a terminal ({which}). For pipes, scripts and ssh without a tty use \
         `tickmux stream SYMBOL...` (JSON lines), or `tickmux demo` for a plain-text screen"
    ))
}

/// Restores the terminal when dropped (normal exit, `?` and unwinding alike).
#[must_use = "dropping the guard restores the terminal"]
pub struct TerminalGuard(());

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore();
    }
}

/// Enter raw mode and the alternate screen (and mouse capture when `mouse`), install the
/// panic hook, and return the terminal with its guard.
pub fn enter(mouse: bool) -> io::Result<(Tui, TerminalGuard)> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let guard = TerminalGuard(());
    let mut out = io::stdout();
    execute!(out, EnterAlternateScreen)?;
    if mouse {
        MOUSE.store(true, Ordering::SeqCst);
        execute!(out, EnableMouseCapture)?;
    }
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    term.hide_cursor()?;
    term.clear()?;
    Ok((term, guard))
}

/// Undo everything [`enter`] turned on; safe to call more than once and from any thread.
pub fn restore() -> io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let mut out = io::stdout();
    let mut first_err = None;
    let mut note = |r: io::Result<()>| {
        if let Err(e) = r
            && first_err.is_none()
        {
            first_err = Some(e);
        }
    };
    if MOUSE.swap(false, Ordering::SeqCst) {
        note(execute!(out, DisableMouseCapture));
    }
    note(execute!(out, LeaveAlternateScreen, Show));
    note(disable_raw_mode());
    first_err.map_or(Ok(()), Err)
}

/// True once a panic has restored the terminal (the loop must stop drawing).
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Resolves after a panic anywhere in the process restored the terminal.
pub async fn wait_panic() {
    if panicked() {
        return;
    }
    PANIC_NOTIFY.notified().await;
}

/// Restore first (so the message lands on a sane screen), then chain the previous hook
/// (the logging hook writes the panic to the log, the default one prints it).
fn install_panic_hook() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let was_active = ACTIVE.load(Ordering::SeqCst);
            let _ = restore();
            if was_active {
                PANICKED.store(true, Ordering::SeqCst);
                PANIC_NOTIFY.notify_one();
                tracing::error!("panic while the TUI was active; terminal restored");
            }
            prev(info);
        }));
    });
}

//! The simulator's fault menu: which key injects which fault for how long. The keymap binds
//! these keys in the fault-menu context and the menu popup lists them, so both come from here.

use crate::sim::Fault;
use std::time::Duration;

/// One entry of the fault menu.
#[derive(Debug, Clone, Copy)]
pub struct FaultItem {
    /// Key that picks it in the menu.
    pub key: char,
    /// Menu text.
    pub label: &'static str,
    /// The fault (a constructor: `Fault` is not `Copy`); `None` = clear all faults.
    pub make: Option<fn() -> Fault>,
    /// How long a persistent fault lasts; `None` for one-shots (and clear).
    pub seconds: Option<u64>,
}

impl FaultItem {
    /// The fault's duration.
    pub fn duration(&self) -> Option<Duration> {
        self.seconds.map(Duration::from_secs)
    }
}

/// The menu, in display order. Durations are long enough to watch the engine notice (the
/// transport watchdog is 3 s, the data watchdog 10 s) and short enough to watch it recover.
pub const FAULT_MENU: &[FaultItem] = &[
    FaultItem {
        key: '1',
        label: "close frame (1001)",
        make: Some(|| Fault::Close { code: 1001 }),
        seconds: None,
    },
    FaultItem {
        key: '2',
        label: "TCP reset",
        make: Some(|| Fault::Reset),
        seconds: None,
    },
    FaultItem {
        key: '3',
        label: "blackhole 10 s",
        make: Some(|| Fault::Blackhole),
        seconds: Some(10),
    },
    FaultItem {
        key: '4',
        label: "heartbeats only 15 s",
        make: Some(|| Fault::HeartbeatsOnly),
        seconds: Some(15),
    },
    FaultItem {
        key: '5',
        label: "reject token (403) 10 s",
        make: Some(|| Fault::Reject403),
        seconds: Some(10),
    },
    FaultItem {
        key: '6',
        label: "connection limit (429) 20 s",
        make: Some(|| Fault::Reject429),
        seconds: Some(20),
    },
    FaultItem {
        key: '7',
        label: "accept then close 10 s",
        make: Some(|| Fault::AcceptThenClose),
        seconds: Some(10),
    },
    FaultItem {
        key: '8',
        label: "malformed frames 10 s",
        make: Some(|| Fault::Malformed),
        seconds: Some(10),
    },
    FaultItem {
        key: '9',
        label: "slow writes 300 ms, 10 s",
        make: Some(|| Fault::SlowWrites { delay_ms: 300 }),
        seconds: Some(10),
    },
    FaultItem {
        key: '0',
        label: "acked but silent 15 s",
        make: Some(|| Fault::IgnoreSubscriptions),
        seconds: Some(15),
    },
    FaultItem {
        key: 'w',
        label: "reconnect cooldown 20 s",
        make: Some(|| Fault::Cooldown {
            window_seconds: 5.0,
        }),
        seconds: Some(20),
    },
    FaultItem {
        key: 'x',
        label: "close after subscribe 10 s",
        make: Some(|| Fault::CloseAfterSubscribe),
        seconds: Some(10),
    },
    FaultItem {
        key: 'c',
        label: "clear all faults",
        make: None,
        seconds: None,
    },
];

//! The one switch over the shortcuts that read CPython's internals (type
//! version tags, dict versions, `uuid.UUID`'s slot offsets, setting an
//! instance dict in place): `EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS=1` in
//! the environment, read once per process, turns them all off, so every
//! path goes through the public C API alone. The test suite runs once
//! with it set, so the fallbacks stay correct where a shortcut does not
//! apply (a new CPython, PyPy, a free-threaded build).

use std::sync::OnceLock;

/// The variable that switches the shortcuts off.
pub const SWITCH: &str = "EVENTSOURCING_RS_NO_CPYTHON_SHORTCUTS";

static DISABLED: OnceLock<bool> = OnceLock::new();

/// Whether the shortcuts are switched off for this process.
pub fn shortcuts_disabled() -> bool {
    *DISABLED
        .get_or_init(|| std::env::var(SWITCH).is_ok_and(|value| !matches!(value.trim(), "" | "0")))
}

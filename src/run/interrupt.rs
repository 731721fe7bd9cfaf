//! Graceful interrupts. After [`install`], the first Ctrl-C (SIGINT) or SIGTERM only sets a flag:
//! the run loop finishes the step in progress, writes a checkpoint, the metrics, the figures and
//! `summary.json`, and returns; `expc resume DIR` then continues exactly where it stopped. A second
//! signal of either kind ends the process at once (its default action).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `signal` and `raise` are async-signal-safe; SIG_DFL is a valid handler.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Routes SIGINT and SIGTERM to the flag (the CLI calls this before training).
pub fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic and calls async-signal-safe functions.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether an interrupt was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Asks for an interrupt, as the first signal does (for tests and embedding programs).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

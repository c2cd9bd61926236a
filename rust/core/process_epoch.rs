//! Which process this is: a value that changes in a forked child.
//!
//! State that must not be shared with a forked child (database
//! connections, a block of random bytes) remembers the epoch it was made
//! in and is dropped when the epoch differs. Forks are counted by a
//! `pthread_atfork` handler run in each child, which costs nothing per
//! check, where asking for the process id is a system call. Where no
//! handler can be registered, the process id serves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Forks this process has come out of.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    // Async-signal-safe, as a handler run in a forked child must be.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

pub fn process_epoch() -> u64 {
    static COUNTING: OnceLock<bool> = OnceLock::new();
    let counting = *COUNTING.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: registers a handler that only touches an atomic.
            unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) == 0 }
        }
        #[cfg(not(unix))]
        {
            let _ = count_fork_in_child;
            true
        }
    });
    if counting {
        FORKS.load(Ordering::Relaxed)
    } else {
        u64::from(std::process::id())
    }
}

/// What the handler does in a forked child, for tests of code that must
/// notice a fork.
#[cfg(test)]
pub fn pretend_forked() {
    count_fork_in_child();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_changes_the_epoch() {
        let before = process_epoch();
        pretend_forked();
        assert_ne!(process_epoch(), before);
    }
}

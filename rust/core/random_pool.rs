//! Random bytes for new UUIDs, drawn from the OS in blocks.
//!
//! One `getrandom` call per UUID costs more than the rest of making it. A
//! block is drawn at a time instead, and handed out 16 bytes at a time.
//! After a fork, the child must never hand out bytes its parent also
//! holds (that would give both processes the same ids), so every fork
//! bumps a generation counter, from a `pthread_atfork` child handler that
//! runs for any fork of the process, and a block from an older generation
//! is thrown away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use parking_lot::Mutex;

const BLOCK: usize = 4096;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Only an atomic store: safe in a freshly forked child.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

struct Pool {
    bytes: [u8; BLOCK],
    next: usize,
    generation: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    bytes: [0; BLOCK],
    next: BLOCK,
    generation: 0,
});

/// Sixteen random bytes never handed out before in this process or any
/// process it was forked from or forked into.
pub fn random_u128() -> Result<u128, getrandom::Error> {
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    let mut pool = POOL.lock();
    let generation = GENERATION.load(Ordering::SeqCst);
    if pool.generation != generation || pool.next + 16 > BLOCK {
        getrandom::fill(&mut pool.bytes)?;
        pool.next = 0;
        pool.generation = generation;
    }
    let start = pool.next;
    let mut value = [0u8; 16];
    value.copy_from_slice(&pool.bytes[start..start + 16]);
    // Wipe what was handed out so it cannot be handed out again.
    pool.bytes[start..start + 16].fill(0);
    pool.next += 16;
    Ok(u128::from_be_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn values_do_not_repeat_across_blocks() {
        let seen: HashSet<u128> = (0..3 * BLOCK / 16)
            .map(|_| random_u128().unwrap())
            .collect();
        assert_eq!(seen.len(), 3 * BLOCK / 16);
    }

    #[test]
    fn a_new_generation_discards_the_block() {
        let _ = random_u128().unwrap();
        after_fork_in_child();
        let _ = random_u128().unwrap();
        let pool = POOL.lock();
        assert_eq!(pool.generation, GENERATION.load(Ordering::SeqCst));
    }
}

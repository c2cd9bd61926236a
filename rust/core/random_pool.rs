//! Random bytes for new UUIDs, drawn from the OS in blocks.
//!
//! One `getrandom` call per UUID costs more than the rest of making it. A
//! block is drawn at a time instead, and handed out 16 bytes at a time.
//! After a fork, the child must never hand out bytes its parent also
//! holds (that would give both processes the same ids), so a block drawn
//! in another process epoch (see `process_epoch`) is thrown away.

use parking_lot::Mutex;

use super::process_epoch::process_epoch;

const BLOCK: usize = 4096;

struct Pool {
    bytes: [u8; BLOCK],
    next: usize,
    epoch: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    bytes: [0; BLOCK],
    next: BLOCK,
    epoch: 0,
});

/// Sixteen random bytes never handed out before in this process or any
/// process it was forked from or forked into.
pub fn random_u128() -> Result<u128, getrandom::Error> {
    let epoch = process_epoch();
    let mut pool = POOL.lock();
    if pool.epoch != epoch || pool.next + 16 > BLOCK {
        getrandom::fill(&mut pool.bytes)?;
        pool.next = 0;
        pool.epoch = epoch;
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
    fn a_new_epoch_discards_the_block() {
        let _ = random_u128().unwrap();
        crate::core::process_epoch::pretend_forked();
        let _ = random_u128().unwrap();
        let pool = POOL.lock();
        assert_eq!(pool.epoch, process_epoch());
    }
}

//! Group commit: the writes of one database's threads that arrive while a
//! commit is in flight are written together, in one transaction made
//! durable by one sync, when it is done. The stores say how a group is
//! written (`sqlite::group_commit`, `postgres::group_write`); this module
//! says who writes it and when.
//!
//! A thread that writes queues its request and, if no thread is
//! committing, becomes the leader: it takes every queued request that can
//! join its own (same database, and for PostgreSQL the same table lock),
//! writes them in one transaction, and hands each thread its own outcome.
//! Threads that arrive while it commits wait, and the first of them to
//! wake leads the next group.
//!
//! There is no gathering window: a leader writes what is queued when it
//! starts. Waiting for the writers of the last group to come back (each
//! making its next write in Python, one GIL at a time) made groups fuller
//! but kept every writer waiting on one commit at a time; without the wait
//! one group commits while the next one's writers run their Python, and
//! saves from 8 and 32 threads went faster on SQLite files and on
//! PostgreSQL with fsync on (`benches/RESULTS.md`). A lone writer never
//! waits.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use parking_lot::{Mutex, MutexGuard};

use crate::core::process_epoch::process_epoch;
use std::thread::Thread;

/// A queued request, its type and lifetime erased: it is a `&mut R` of
/// the thread that queued it, which waits, blocked, until its outcome is
/// in; only the leader uses it meanwhile.
struct Queued {
    ticket: u64,
    request: *mut (),
    /// Woken when its outcome is in, or when it may lead the next group.
    thread: Thread,
}

// SAFETY: see `Queued`: the pointer is used by one thread at a time (the
// leader), while the thread that owns what it points to is blocked, and
// `submit` requires the request to be `Send`.
unsafe impl Send for Queued {}

struct State<O> {
    /// The process the state belongs to (see `process_epoch`).
    epoch: u64,
    queued: Vec<Queued>,
    leading: bool,
    next_ticket: u64,
    outcomes: HashMap<u64, O>,
    commits: u64,
    writes: u64,
}

/// One database's queue of writes; `O` is a write's outcome.
pub struct GroupQueue<O> {
    state: Mutex<State<O>>,
}

impl<O> Default for GroupQueue<O> {
    fn default() -> Self {
        GroupQueue {
            state: Mutex::new(State {
                epoch: process_epoch(),
                queued: Vec::new(),
                leading: false,
                next_ticket: 0,
                outcomes: HashMap::new(),
                commits: 0,
                writes: 0,
            }),
        }
    }
}

impl<O> GroupQueue<O> {
    /// How many groups were written, and how many writes they held.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.commits, state.writes)
    }

    /// Queues `request` and returns its outcome, written by this thread
    /// (leading a group) or by another. `joins(first, other)` says whether
    /// `other` may be written in the group led by `first`; `write` writes
    /// a group, giving one outcome per request, in order; `failed` is the
    /// outcome of each request of a group whose writing panicked.
    ///
    /// Every thread that submits to one queue must pass the same type `R`
    /// (each store keeps its queue private to its one request type).
    pub fn submit<R: Send>(
        &self,
        request: &mut R,
        joins: impl Fn(&R, &R) -> bool,
        write: impl Fn(Vec<&mut R>) -> Vec<O>,
        failed: impl Fn() -> O,
    ) -> O {
        let mut state = self.state.lock();
        if state.epoch != process_epoch() {
            // A forked child: the queued requests, the outcomes and the
            // leader are the parent's threads', which do not exist here.
            state.epoch = process_epoch();
            std::mem::forget(std::mem::take(&mut state.queued));
            std::mem::forget(std::mem::take(&mut state.outcomes));
            state.leading = false;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push(Queued {
            ticket,
            request: request as *mut R as *mut (),
            thread: std::thread::current(),
        });
        loop {
            if let Some(outcome) = state.outcomes.remove(&ticket) {
                return outcome;
            }
            if state.leading {
                // Woken (unparked) by the leader once this request's
                // outcome is in, or to lead the next group; a wake-up for
                // neither just goes round again.
                MutexGuard::unlocked(&mut state, std::thread::park);
                continue;
            }
            state.leading = true;
            let group = take_group(&mut state.queued, &joins);
            let tickets: Vec<u64> = group.iter().map(|q| q.ticket).collect();
            let waiting: Vec<Thread> = group.iter().map(|q| q.thread.clone()).collect();
            let outcomes = MutexGuard::unlocked(&mut state, || {
                // SAFETY: each request's thread is blocked until its outcome
                // is in (below); none is used after `write` returns.
                let requests = group
                    .iter()
                    .map(|q| unsafe { &mut *(q.request as *mut R) })
                    .collect();
                // A panic must not leave the others waiting for ever, nor
                // this thread leading: it fails the group.
                catch_unwind(AssertUnwindSafe(|| write(requests)))
                    .unwrap_or_else(|_| tickets.iter().map(|_| failed()).collect())
            });
            state.commits += 1;
            state.writes += tickets.len() as u64;
            state.outcomes.extend(tickets.into_iter().zip(outcomes));
            state.leading = false;
            // Only the threads with an outcome, and the first still queued
            // (to lead the next group): not every waiter.
            let next = state.queued.first().map(|q| q.thread.clone());
            MutexGuard::unlocked(&mut state, || {
                for thread in waiting.iter().chain(&next) {
                    if thread.id() != std::thread::current().id() {
                        thread.unpark();
                    }
                }
            });
        }
    }
}

/// The queued requests that join the first one (which always leads its
/// group); the others stay queued, in order.
fn take_group<R>(queued: &mut Vec<Queued>, joins: &impl Fn(&R, &R) -> bool) -> Vec<Queued> {
    let all = std::mem::take(queued);
    let mut group = Vec::with_capacity(all.len());
    let mut first: Option<*mut R> = None;
    for q in all {
        let request = q.request as *mut R;
        // SAFETY: as in `submit`: the requests' threads are blocked.
        let fits = match first {
            None => true,
            Some(first) => unsafe { joins(&*first, &*request) },
        };
        if fits {
            first.get_or_insert(request);
            group.push(q);
        } else {
            queued.push(q);
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn each_request_gets_its_own_outcome_and_groups_form_under_load() {
        let queue: Arc<GroupQueue<u64>> = Arc::default();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let mut request = t * 1000 + i;
                        let got = queue.submit(
                            &mut request,
                            |_, _| true,
                            |group| {
                                std::thread::sleep(Duration::from_micros(50));
                                group.into_iter().map(|r| *r * 2).collect()
                            },
                            || u64::MAX,
                        );
                        assert_eq!(got, (t * 1000 + i) * 2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (groups, writes) = queue.counts();
        assert_eq!(writes, 1600);
        assert!(groups < writes, "{groups} groups for {writes} writes");
    }

    #[test]
    fn only_requests_that_join_share_a_group() {
        let queue: Arc<GroupQueue<bool>> = Arc::default();
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let mut request = t % 2;
                        let mixed = queue.submit(
                            &mut request,
                            |a, b| a == b,
                            |group| {
                                let kind = *group[0];
                                let same = group.iter().all(|r| **r == kind);
                                vec![same; group.len()]
                            },
                            || false,
                        );
                        assert!(mixed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_panic_while_writing_fails_the_group_not_the_queue() {
        let queue: GroupQueue<Result<u8, &'static str>> = GroupQueue::default();
        let mut request = 1u8;
        let outcome = queue.submit(
            &mut request,
            |_, _| true,
            |_| panic!("boom"),
            || Err("failed"),
        );
        assert_eq!(outcome, Err("failed"));
        let mut request = 2u8;
        let outcome = queue.submit(
            &mut request,
            |_, _| true,
            |group| group.into_iter().map(|r| Ok(*r)).collect(),
            || Err("failed"),
        );
        assert_eq!(outcome, Ok(2));
    }
}

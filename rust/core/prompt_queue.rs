//! The prompt queue between leaders and one follower.
//!
//! Leaders put their names; the follower takes every pending name at once.
//! A name put while the follower is busy stays queued, so the follower's
//! next take returns it: no prompt is ever lost. Names are de-duplicated
//! because one pull catches up on everything a leader has committed.

use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    pending: Vec<String>,
    stopped: bool,
}

#[derive(Debug, Default)]
pub struct PromptQueue {
    state: Mutex<State>,
    wakeup: Condvar,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Names(Vec<String>),
    Stopped,
    TimedOut,
}

impl PromptQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a leader's name; returns false if it was already pending.
    pub fn put(&self, name: &str) -> bool {
        let mut state = self.state.lock();
        if state.pending.iter().any(|n| n == name) {
            return false;
        }
        state.pending.push(name.to_string());
        drop(state);
        self.wakeup.notify_all();
        true
    }

    /// Takes every pending name without waiting.
    pub fn take_now(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().pending)
    }

    /// Waits until a name is pending (then takes them all), the queue is
    /// stopped, or the timeout passes. Pending names win over a stop so a
    /// caller can drain before exiting if it wants to.
    pub fn wait_take(&self, timeout: Option<Duration>) -> Take {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state.lock();
        loop {
            if !state.pending.is_empty() {
                return Take::Names(std::mem::take(&mut state.pending));
            }
            if state.stopped {
                return Take::Stopped;
            }
            match deadline {
                None => self.wakeup.wait(&mut state),
                Some(d) => {
                    if self.wakeup.wait_until(&mut state, d).timed_out()
                        && state.pending.is_empty()
                        && !state.stopped
                    {
                        return Take::TimedOut;
                    }
                }
            }
        }
    }

    /// Stops the queue and wakes every waiter.
    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.wakeup.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.state.lock().stopped
    }

    pub fn pending(&self) -> Vec<String> {
        self.state.lock().pending.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn dedups_and_keeps_order() {
        let q = PromptQueue::new();
        assert!(q.put("a"));
        assert!(q.put("b"));
        assert!(!q.put("a"));
        assert_eq!(q.take_now(), vec!["a".to_string(), "b".to_string()]);
        assert!(q.take_now().is_empty());
    }

    #[test]
    fn times_out_and_stops() {
        let q = PromptQueue::new();
        assert_eq!(q.wait_take(Some(Duration::from_millis(5))), Take::TimedOut);
        q.stop();
        assert_eq!(q.wait_take(None), Take::Stopped);
    }

    #[test]
    fn no_prompt_lost_across_threads() {
        let q = Arc::new(PromptQueue::new());
        let producers: Vec<_> = (0..4)
            .map(|i| {
                let q = q.clone();
                thread::spawn(move || {
                    for _ in 0..1000 {
                        q.put(&format!("leader{i}"));
                    }
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = std::collections::HashSet::new();
                loop {
                    match q.wait_take(Some(Duration::from_millis(200))) {
                        Take::Names(names) => got.extend(names),
                        _ => return got,
                    }
                }
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        seen.extend(consumer.join().unwrap());
        seen.extend(q.take_now());
        assert_eq!(seen.len(), 4);
    }
}

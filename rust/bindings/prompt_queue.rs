//! The prompt queue for Python: waits release the GIL.

use std::time::Duration;

use pyo3::prelude::*;

use crate::core::prompt_queue::{PromptQueue as Queue, Take};

#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct PromptQueue {
    queue: Queue,
}

#[pymethods]
impl PromptQueue {
    #[new]
    fn new() -> Self {
        PromptQueue {
            queue: Queue::new(),
        }
    }

    /// Queues a leader's name; False if it was already pending.
    fn put(&self, leader_name: &str) -> bool {
        self.queue.put(leader_name)
    }

    /// Takes every pending name without waiting.
    fn take(&self) -> Vec<String> {
        self.queue.take_now()
    }

    /// Waits for pending names and takes them all. Returns None once the
    /// queue is stopped (and empty), or an empty list on timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Vec<String>>> {
        let timeout = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "timeout must be a non-negative number of seconds, got {t}"
                )))
            }
            // Infinite, or longer than a Duration holds (or than anyone
            // waits): no timeout, rather than a panic converting it.
            Some(t) => Duration::try_from_secs_f64(t).ok(),
            None => None,
        };
        let taken = py.detach(|| self.queue.wait_take(timeout));
        Ok(match taken {
            Take::Names(names) => Some(names),
            Take::Stopped => None,
            Take::TimedOut => Some(Vec::new()),
        })
    }

    /// Stops the queue and wakes every waiter.
    fn stop(&self) {
        self.queue.stop()
    }

    #[getter]
    fn is_stopped(&self) -> bool {
        self.queue.is_stopped()
    }

    #[getter]
    fn pending(&self) -> Vec<String> {
        self.queue.pending()
    }
}

//! Tracking bookkeeping for Python followers.

use parking_lot::Mutex;
use pyo3::prelude::*;

use super::errors::TrackingRefused;
use crate::core::tracking::TrackingBook as Book;

#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct TrackingBook {
    book: Mutex<Book>,
}

#[pymethods]
impl TrackingBook {
    #[new]
    fn new() -> Self {
        TrackingBook {
            book: Mutex::new(Book::new()),
        }
    }

    /// The last processed notification id of the leader, if known.
    fn position(&self, leader_name: &str) -> Option<i64> {
        self.book.lock().position(leader_name)
    }

    /// Records a position read from the process recorder.
    pub(crate) fn learn(&self, leader_name: &str, position: i64) {
        self.book.lock().learn(leader_name, position)
    }

    /// Raises IntegrityError (naming the leader and ids) if the tracking id
    /// does not advance past the known position.
    pub(crate) fn check(&self, leader_name: &str, notification_id: i64) -> PyResult<()> {
        let result = self.book.lock().check(leader_name, notification_id);
        result.map_err(|e| TrackingRefused::new_err(e.to_string()))
    }

    /// Moves the known position on, after the insert committed.
    pub(crate) fn advance(&self, leader_name: &str, notification_id: i64) -> PyResult<()> {
        let result = self.book.lock().advance(leader_name, notification_id);
        result.map_err(|e| TrackingRefused::new_err(e.to_string()))
    }

    /// Forgets the leader's position, so it is read again from the recorder.
    pub(crate) fn forget(&self, leader_name: &str) {
        self.book.lock().forget(leader_name)
    }
}

//! The in-memory recorder: `MemoryStore` behind a lock, holding the
//! StoredEvent objects it was given. Python objects are only touched
//! outside the lock.

use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::{IntegrityError, TrackingRefused};
use super::uuids::{u128_to_hyphenated, uuid_to_u128};
use super::values::{Notification, StoredEvent, Tracking};
use crate::core::memory_store::{EventQuery, InsertError, MemoryStore, NewEvent};
use crate::core::segment::SegmentFilter;

#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct MemoryRecorder {
    store: RwLock<MemoryStore<Py<StoredEvent>>>,
}

impl MemoryRecorder {
    /// The recorded events from notification id `start`, with their ids,
    /// as the stored objects themselves (no Notification made for each).
    pub(crate) fn notification_rows<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
    ) -> Vec<(i64, Bound<'py, StoredEvent>)> {
        let rows = self.store.read().select_notifications(start, limit);
        rows.into_iter()
            .map(|(id, record)| (id, record.bind(py).clone()))
            .collect()
    }
}

/// Takes a stored event the store now keeps off the cyclic garbage
/// collector's lists, when it is exactly a StoredEvent: that declares no
/// references (it holds a UUID, an int, a str and bytes), so no cycle can
/// pass through it, and every full collection would otherwise walk all the
/// events the store keeps. A subclass's instance has a `__dict__`, which
/// could be in a cycle, and stays tracked.
fn untrack_if_plain(record: &Bound<'_, PyAny>) {
    if record.get_type().is(record.py().get_type::<StoredEvent>()) {
        // SAFETY: a live object of a GC type; untracking one already
        // untracked is allowed.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(record.as_ptr().cast()) };
    }
}

pub fn insert_error_message(err: &InsertError) -> String {
    match err {
        InsertError::Conflict {
            originator_id,
            version,
        } => format!(
            "event at version {version} of aggregate {} is already recorded",
            u128_to_hyphenated(*originator_id)
        ),
        InsertError::DuplicateInBatch {
            originator_id,
            version,
        } => format!(
            "two events at version {version} of aggregate {} in one insert",
            u128_to_hyphenated(*originator_id)
        ),
        InsertError::Tracking(refused) => refused.to_string(),
    }
}

#[pymethods]
impl MemoryRecorder {
    #[new]
    fn new() -> Self {
        MemoryRecorder {
            store: RwLock::new(MemoryStore::new()),
        }
    }

    /// Inserts the events (and tracking record) all or nothing; returns
    /// their notification ids.
    #[pyo3(signature = (stored_events, tracking=None))]
    pub(crate) fn insert_events(
        &self,
        py: Python<'_>,
        stored_events: &Bound<'_, PyAny>,
        tracking: Option<PyRef<'_, Tracking>>,
    ) -> PyResult<Vec<i64>> {
        let mut batch = Vec::new();
        for item in stored_events.try_iter()? {
            let item = item?;
            let stored = item.cast_into::<StoredEvent>()?;
            let s = stored.get();
            batch.push(NewEvent {
                originator_id: s.require_key(py)?,
                version: s.originator_version,
                record: Arc::new(stored.unbind()),
            });
        }
        let tracking = tracking.as_ref().map(|t| t.record());
        let kept: Vec<Py<PyAny>> = batch
            .iter()
            .map(|e| e.record.clone_ref(py).into_any())
            .collect();
        let result = self.store.write().insert(batch, tracking);
        let ids = result.map_err(|e| match e {
            InsertError::Tracking(_) => TrackingRefused::new_err(insert_error_message(&e)),
            _ => IntegrityError::new_err(insert_error_message(&e)),
        })?;
        for record in &kept {
            untrack_if_plain(record.bind(py));
        }
        Ok(ids)
    }

    #[pyo3(signature = (originator_id, gt=None, lte=None, desc=false, limit=None))]
    fn select_events<'py>(
        &self,
        py: Python<'py>,
        originator_id: &Bound<'py, PyAny>,
        gt: Option<i64>,
        lte: Option<i64>,
        desc: bool,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = uuid_to_u128(originator_id, "originator_id")?;
        let query = EventQuery {
            gt,
            lte,
            desc,
            limit,
        };
        let records = self.store.read().select_events(key, query);
        PyList::new(py, records.iter().map(|r| r.bind(py)))
    }

    pub(crate) fn select_notifications<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (id, record) in self.notification_rows(py, start, limit) {
            let event = record.get().clone_ref(py);
            list.append(Notification::create(py, id, event)?)?;
        }
        Ok(list)
    }

    /// The notifications of segment `index` of `count` (see
    /// `eventsourcing_rs.segments`) among the `scan` from `start`, and the
    /// id of the last one scanned.
    fn select_segment<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        scan: usize,
        index: u32,
        count: u32,
    ) -> PyResult<(Bound<'py, PyList>, i64)> {
        let segment = SegmentFilter { index, count };
        let (rows, upto) = self.store.read().select_segment(start, scan, segment);
        let list = PyList::empty(py);
        for (id, record) in rows {
            let event = record.get().clone_ref(py);
            list.append(Notification::create(py, id, event)?)?;
        }
        Ok((list, upto))
    }

    fn max_notification_id(&self) -> i64 {
        self.store.read().max_notification_id()
    }

    pub(crate) fn max_tracking_id(&self, application_name: &str) -> i64 {
        self.store.read().max_tracking_id(application_name)
    }
}

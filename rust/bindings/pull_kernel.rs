//! One page of a follower's pull from a leader in the same process, run
//! here when every object on its path is a stock one backed by Rust (see
//! `shortcuts.py`): reading the position and the leader's page, decoding
//! each notification, calling the policy, and recording the batch with its
//! tracking record, without going back to Python between those steps.
//!
//! The follower keeps the semantics: it notifies, and it handles a failed
//! policy or insert from what `page` returns (see `FollowerPull`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::mapper::EventMapper;
use super::memory_recorder::MemoryRecorder;
use super::method_guard::MethodGuard;
use super::objects::new_with_dict;
use super::sqlite_recorder::{NotificationRows, SqliteRecorder};
use super::tracking::TrackingBook;
use super::values::Tracking;

/// A Rust process or application recorder.
pub enum Recorder {
    Memory(Py<MemoryRecorder>),
    Sqlite(Py<SqliteRecorder>),
}

impl Recorder {
    pub fn new(obj: &Bound<'_, PyAny>, role: &str) -> PyResult<Self> {
        if let Ok(r) = obj.cast::<MemoryRecorder>() {
            return Ok(Recorder::Memory(r.clone().unbind()));
        }
        if let Ok(r) = obj.cast::<SqliteRecorder>() {
            return Ok(Recorder::Sqlite(r.clone().unbind()));
        }
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "the {role} recorder is not a Rust recorder: {}",
            obj.get_type().repr()?
        )))
    }

    pub fn object(&self) -> &Py<PyAny> {
        match self {
            Recorder::Memory(r) => r.as_any(),
            Recorder::Sqlite(r) => r.as_any(),
        }
    }

    fn max_tracking_id(&self, py: Python<'_>, name: &str) -> PyResult<i64> {
        match self {
            Recorder::Memory(r) => Ok(r.get().max_tracking_id(name)),
            Recorder::Sqlite(r) => r.get().max_tracking_id(py, name),
        }
    }

    /// The leader's events from notification id `start`, with their ids.
    fn notification_rows<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
    ) -> PyResult<NotificationRows<'py>> {
        match self {
            Recorder::Memory(r) => Ok((r.get().notification_rows(py, start, limit), None)),
            Recorder::Sqlite(r) => r.get().notification_rows(py, start, limit),
        }
    }

    pub fn insert_events(
        &self,
        py: Python<'_>,
        stored: &Bound<'_, PyAny>,
        tracking: Option<PyRef<'_, Tracking>>,
    ) -> PyResult<Vec<i64>> {
        match self {
            Recorder::Memory(r) => r.get().insert_events(py, stored, tracking),
            Recorder::Sqlite(r) => r.get().insert_events(py, stored, tracking),
        }
    }
}

/// What one page of a pull did: how many notifications the page held,
/// how many were processed (and with which last tracking record); if
/// something failed, the error and the notification whose processing
/// raised it (None when the batch's insert failed, which then wrote
/// nothing); and whether the batch was recorded (false, with no error,
/// when it is left for the follower to record because a method on the
/// path was replaced).
pub struct PageOutcome<'py> {
    pub page: usize,
    pub count: usize,
    pub tracking: Option<Bound<'py, Tracking>>,
    pub failed_id: Option<i64>,
    pub error: Option<PyErr>,
    pub recorded: bool,
    /// For each processed notification, in order: how many of the batch's
    /// events there were once it was processed, and its id (so that a
    /// batch whose insert fails can be recorded a notification at a time,
    /// without calling the policies again).
    pub marks: Vec<(usize, i64)>,
}

impl<'py> PageOutcome<'py> {
    /// Processed and recorded (or nothing to process): the follower has
    /// only to notify.
    pub fn is_done(&self) -> bool {
        self.error.is_none() && (self.recorded || self.count == 0)
    }

    /// The tuple the follower's `_finish_kernel_page` is given.
    pub fn into_tuple(self, py: Python<'py>) -> PullOutcome {
        (
            self.page,
            self.count,
            self.tracking.map(Bound::unbind),
            self.failed_id,
            self.error.map(|e| e.into_value(py).into_any()),
            self.recorded,
            self.marks,
        )
    }
}

/// `PageOutcome` as Python sees it.
pub type PullOutcome = (
    usize,
    usize,
    Option<Py<Tracking>>,
    Option<i64>,
    Option<Py<PyAny>>,
    bool,
    Vec<(usize, i64)>,
);

/// The Rust objects behind one follower's pull from one leader.
#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct PullKernel {
    follower: Recorder,
    leader: Recorder,
    decoder: Py<EventMapper>,
    encoder: Py<EventMapper>,
    book: Py<TrackingBook>,
    /// Says whether the Rust calls still stand for the Python methods; a
    /// policy may replace one while the page is processed.
    guard: Py<MethodGuard>,
}

#[pymethods]
impl PullKernel {
    /// What the kernel holds, shown to the cyclic garbage collector (a
    /// follower keeps its kernel, and the kernel the follower's recorder).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self.follower.object())?;
        visit.call(self.leader.object())?;
        visit.call(&self.decoder)?;
        visit.call(&self.encoder)?;
        visit.call(&self.book)?;
        visit.call(&self.guard)
    }

    #[new]
    fn new(
        follower: &Bound<'_, PyAny>,
        leader: &Bound<'_, PyAny>,
        decoder: Bound<'_, EventMapper>,
        encoder: Bound<'_, EventMapper>,
        book: Bound<'_, TrackingBook>,
        guard: Bound<'_, MethodGuard>,
    ) -> PyResult<Self> {
        Ok(PullKernel {
            follower: Recorder::new(follower, "follower's")?,
            leader: Recorder::new(leader, "leader's")?,
            decoder: decoder.unbind(),
            encoder: encoder.unbind(),
            book: book.unbind(),
            guard: guard.unbind(),
        })
    }
}

impl PullKernel {
    /// The guard the kernel was made with (over the recorders, event store,
    /// log and mappers it stands for).
    pub fn guard(&self) -> &MethodGuard {
        self.guard.get()
    }

    /// Processes the leader's next page of up to `limit` notifications
    /// (from the one after the follower's tracked position). For each, a
    /// process event `process_event_class(Tracking(name, id))` is made
    /// (with `stock_process_event`, as its stock `__init__` would make it,
    /// without calling it), `policy(domain_event, process_event)` is
    /// called, and the process event's new events are appended to `events`
    /// (the batch's pending events, which the event store serves to the
    /// policies that follow). If every policy returns, and the methods on
    /// the path are unchanged, the batch is recorded in one insert with the
    /// last tracking record.
    ///
    /// Errors reading the position or the page are raised. A policy (or
    /// decoding) that raises stops the page and nothing is recorded: the
    /// outcome names the notification, and `events` holds what the ones
    /// before it made. Recording that fails (a tracking record that would
    /// not advance, an event that cannot be encoded, the insert) wrote
    /// nothing; the outcome carries its error.
    #[allow(clippy::too_many_arguments)]
    pub fn page<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyString>,
        limit: usize,
        policy: &Bound<'py, PyAny>,
        events: &Bound<'py, PyList>,
        process_event_class: &Bound<'py, PyType>,
        stock_process_event: bool,
    ) -> PyResult<PageOutcome<'py>> {
        let leader_name = name.to_str()?;
        let book = self.book.get();
        let position = self.follower.max_tracking_id(py, leader_name)?;
        book.learn(leader_name, position);
        let (page, stopped_by) = self.leader.notification_rows(py, position + 1, limit)?;
        let decoder = self.decoder.get();
        let mut tracking: Option<Bound<'_, Tracking>> = None;
        let mut count = 0;
        let mut marks: Vec<(usize, i64)> = Vec::with_capacity(page.len());
        for (id, stored) in &page {
            let id = *id;
            let processed = (|| -> PyResult<Bound<'_, Tracking>> {
                let made = Bound::new(
                    py,
                    Tracking {
                        application_name: leader_name.to_owned(),
                        notification_id: id,
                        // The batch is recorded only while the stored
                        // position is still the one it was read from.
                        previous_id: Some(position),
                    },
                )?;
                let process_event = if stock_process_event {
                    // What its __init__ does, without the Python frame.
                    let state = PyDict::new(py);
                    state.set_item(pyo3::intern!(py, "tracking"), made)?;
                    state.set_item(pyo3::intern!(py, "events"), PyList::empty(py))?;
                    new_with_dict(process_event_class, &state)?
                } else {
                    process_event_class.call1((made,))?
                };
                let domain_event = decoder.to_domain_event(py, stored)?;
                policy.call1((domain_event, &process_event))?;
                // All of the process event is read before any of it joins
                // the batch: a notification that fails adds nothing.
                let new_events: Vec<Bound<'_, PyAny>> = process_event
                    .getattr(pyo3::intern!(py, "events"))?
                    .try_iter()?
                    .collect::<PyResult<_>>()?;
                let tracking = process_event
                    .getattr(pyo3::intern!(py, "tracking"))?
                    .cast_into::<Tracking>()?;
                for event in new_events {
                    events.append(event)?;
                }
                Ok(tracking)
            })();
            match processed {
                Ok(t) => {
                    tracking = Some(t);
                    count += 1;
                    marks.push((events.len(), id));
                }
                Err(error) => {
                    return Ok(PageOutcome {
                        page: page.len(),
                        count,
                        tracking,
                        failed_id: Some(id),
                        error: Some(error),
                        marks,
                        recorded: false,
                    });
                }
            }
        }
        if let Some(error) = stopped_by {
            // A row after these could not be read: they are recorded as
            // if a policy had failed at it, and its error raised.
            let failed_id = error
                .value(py)
                .getattr(pyo3::intern!(py, "notification_id"))
                .and_then(|id| id.extract::<i64>())
                .ok();
            return Ok(PageOutcome {
                page: page.len(),
                count,
                tracking,
                failed_id: failed_id.or(Some(0)),
                error: Some(error),
                marks,
                recorded: false,
            });
        }
        let Some(tracking) = tracking else {
            return Ok(PageOutcome {
                page: page.len(),
                count: 0,
                tracking: None,
                failed_id: None,
                error: None,
                marks,
                recorded: true,
            });
        };
        // The methods only: what the calls hang from (a recorder's Rust
        // object, a log's recorder) was checked when the page began, and
        // policies replace methods (to inject a failure, say), not those.
        if !self.guard.get().unchanged(py, false)? {
            // A method on the path was replaced while the page was
            // processed: the follower records the batch through it.
            return Ok(PageOutcome {
                page: page.len(),
                count,
                tracking: Some(tracking),
                failed_id: None,
                error: None,
                marks,
                recorded: false,
            });
        }
        let last = tracking.get().notification_id;
        // As when the follower records a batch itself: a tracking record
        // that would not advance, an event that cannot be encoded and an
        // insert that fails all leave nothing written.
        let recorded = (|| -> PyResult<()> {
            book.check(leader_name, last)?;
            let encoder = self.encoder.get();
            let stored = PyList::empty(py);
            for event in events.iter() {
                stored.append(encoder.stored_event_for(py, &event)?)?;
            }
            self.follower
                .insert_events(py, stored.as_any(), Some(tracking.borrow()))?;
            Ok(())
        })();
        if let Err(error) = recorded {
            book.forget(leader_name);
            return Ok(PageOutcome {
                page: page.len(),
                count,
                tracking: Some(tracking),
                failed_id: None,
                error: Some(error),
                marks,
                recorded: false,
            });
        }
        // The batch is committed. Should the book have been moved on
        // meanwhile (another thread recording for this follower), it is
        // read again from the recorder on the next pull.
        if book.advance(leader_name, last).is_err() {
            book.forget(leader_name);
        }
        Ok(PageOutcome {
            page: page.len(),
            count,
            tracking: Some(tracking),
            failed_id: None,
            error: None,
            marks,
            recorded: true,
        })
    }
}

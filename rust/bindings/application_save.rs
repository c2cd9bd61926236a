//! `Application.save` in Rust while the objects on its path are the stock
//! ones backed by Rust: collecting the aggregates' pending events, encoding
//! them with the Rust mapper, inserting them into the Rust recorder in one
//! insert, and notifying. Each of those is a Python method a user may
//! override; a guard says they are still those the save was made for.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::mapper::EventMapper;
use super::method_guard::{runs_stock_method, MethodGuard};
use super::notify::Notify;
use super::pull_kernel::Recorder;

/// One application's save, all of it in Rust while `guard` holds.
#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct ApplicationSave {
    app: Py<PyAny>,
    /// Over the application (its notify methods, event store, snapshot
    /// settings and followers), its event store (`put`, mapper, recorder),
    /// its recorder (`insert_events`, Rust object) and mapper (encoder).
    guard: Py<MethodGuard>,
    encoder: Py<EventMapper>,
    recorder: Recorder,
    /// `Aggregate.collect_events`, done here for aggregates that have it.
    stock_collect: Py<PyAny>,
    notify: Notify,
}

#[pymethods]
impl ApplicationSave {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.app)?;
        visit.call(&self.guard)?;
        visit.call(&self.encoder)?;
        visit.call(self.recorder.object())?;
        visit.call(&self.stock_collect)?;
        self.notify.traverse(&visit)
    }

    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        app, guard, encoder, recorder, stock_collect, notify, followers=None, runner_receive=None
    ))]
    fn new(
        app: Py<PyAny>,
        guard: Py<MethodGuard>,
        encoder: Py<EventMapper>,
        recorder: &Bound<'_, PyAny>,
        stock_collect: Py<PyAny>,
        notify: &str,
        followers: Option<Py<PyList>>,
        runner_receive: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Ok(ApplicationSave {
            app,
            guard,
            encoder,
            recorder: Recorder::new(recorder, "application's")?,
            stock_collect,
            notify: Notify::new(notify, followers, runner_receive)?,
        })
    }

    /// Saves the aggregates as `Application.save` does (without keyword
    /// arguments) and returns True; or returns False, having done nothing,
    /// when something it stands for has changed since it was made.
    fn run(&self, py: Python<'_>, aggregates: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if !self.guard.get().unchanged(py, true)? {
            return Ok(false);
        }
        let events = PyList::empty(py);
        for aggregate in aggregates.iter() {
            collect_events(py, &aggregate, self.stock_collect.bind(py), &events)?;
        }
        let encoder = self.encoder.get();
        let stored = PyList::empty(py);
        for event in events.iter() {
            stored.append(encoder.stored_event_for(py, &event)?)?;
        }
        self.recorder.insert_events(py, stored.as_any(), None)?;
        self.notify.notify(py, self.app.bind(py), &events, true)?;
        Ok(true)
    }
}

/// Appends `aggregate.collect_events()` to `events`; without the Python
/// call when its method is `stock_collect` (which takes its pending
/// events, oldest first, leaving its list of them empty).
fn collect_events(
    py: Python<'_>,
    aggregate: &Bound<'_, PyAny>,
    stock_collect: &Bound<'_, PyAny>,
    events: &Bound<'_, PyList>,
) -> PyResult<()> {
    let collect = intern!(py, "collect_events");
    if runs_stock_method(aggregate, collect, stock_collect)? {
        if let Ok(pending) = aggregate
            .getattr(intern!(py, "_pending_events"))?
            .cast_into::<PyList>()
        {
            for event in pending.iter() {
                events.append(event)?;
            }
            return pending.del_slice(0, pending.len());
        }
    }
    for event in aggregate.call_method0(collect)?.try_iter()? {
        events.append(event?)?;
    }
    Ok(())
}

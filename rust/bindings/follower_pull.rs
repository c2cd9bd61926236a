//! A follower's whole pull from a leader in the same process, and the
//! single-threaded runner's prompt loop, run here while the follower's
//! methods on that path are the stock ones.
//!
//! `PullKernel` does one page in Rust; around it, `Follower.pull_and_process`
//! reads its state, clears the batch's pending events, notifies (which
//! prompts the runner) and goes on to the next page. With one notification
//! per pull, as the single-threaded runner makes them, those Python steps
//! cost more than the page itself. `FollowerPull` takes them over while a
//! guard says the follower's methods and state are those it was made for;
//! anything customised, and every failure, is handed back to the Python
//! methods (`_finish_kernel_page`, `_note_failure`, `notify`).

use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::method_guard::{runs_stock_method, MethodGuard};
use super::notify::Notify;
use super::pull_kernel::PullKernel;

/// One follower's pull from one leader, all of it in Rust while
/// `guard` and the kernel's guard hold.
#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct FollowerPull {
    follower: Py<PyAny>,
    kernel: Py<PullKernel>,
    /// Over the follower (its methods, and the attributes this pull reads
    /// once: batch size, readers, recorder, event store, tracking book,
    /// followers) and the batch's pending events.
    guard: Py<MethodGuard>,
    /// The follower's readers, whose entry for the leader must stay
    /// `reader_entry` (the reader and mapper the kernel was made for).
    readers: Py<PyDict>,
    reader_entry: Py<PyAny>,
    /// The event store's `PendingEvents`, if it serves pending events.
    pending: Option<Py<PyAny>>,
    batch_size: usize,
    /// Where `ProcessEvent` is looked up on every page (as the Python code
    /// reads its module global), and its stock `__init__`.
    process_events_module: Py<PyAny>,
    stock_init: Py<PyAny>,
    notify: Notify,
}

#[pymethods]
impl FollowerPull {
    /// What it holds, shown to the cyclic garbage collector (the follower
    /// keeps its pulls, and each pull the follower).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.follower)?;
        visit.call(&self.kernel)?;
        visit.call(&self.guard)?;
        visit.call(&self.readers)?;
        visit.call(&self.reader_entry)?;
        if let Some(pending) = &self.pending {
            visit.call(pending)?;
        }
        visit.call(&self.process_events_module)?;
        visit.call(&self.stock_init)?;
        self.notify.traverse(&visit)
    }

    /// `notify` is "method", "nothing" or "prompt"; `followers` and
    /// `runner_receive` are needed for "prompt".
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        follower, kernel, guard, readers, reader_entry, pending, batch_size,
        process_events_module, stock_init, notify, followers=None, runner_receive=None
    ))]
    fn new(
        follower: Py<PyAny>,
        kernel: Py<PullKernel>,
        guard: Py<MethodGuard>,
        readers: Py<PyDict>,
        reader_entry: Py<PyAny>,
        pending: Option<Py<PyAny>>,
        batch_size: usize,
        process_events_module: Py<PyAny>,
        stock_init: Py<PyAny>,
        notify: &str,
        followers: Option<Py<PyList>>,
        runner_receive: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let notify = Notify::new(notify, followers, runner_receive)?;
        Ok(FollowerPull {
            follower,
            kernel,
            guard,
            readers,
            reader_entry,
            pending,
            batch_size,
            process_events_module,
            stock_init,
            notify,
        })
    }

    /// Pulls and processes the leader's notifications as
    /// `Follower.pull_and_process` does, and returns True; or returns
    /// False, having done nothing, when something this pull stands for has
    /// changed since it was made.
    pub fn run(&self, py: Python<'_>, name: &Bound<'_, PyString>) -> PyResult<bool> {
        if !self.applies(py, name)? {
            return Ok(false);
        }
        let follower = self.follower.bind(py);
        let kernel = self.kernel.get();
        follower.setattr(intern!(py, "processing"), py.None())?;
        // Read once per pull, as the Python pull reads it.
        let policy = follower.getattr(intern!(py, "policy"))?;
        loop {
            let process_event_class = self
                .process_events_module
                .bind(py)
                .getattr(intern!(py, "ProcessEvent"))?
                .cast_into::<PyType>()?;
            let stock = process_event_class
                .getattr(intern!(py, "__init__"))?
                .is(self.stock_init.bind(py));
            let events = match &self.pending {
                Some(pending) => pending
                    .bind(py)
                    .getattr(intern!(py, "events"))?
                    .cast_into::<PyList>()?,
                None => PyList::empty(py),
            };
            let outcome = match kernel.page(
                py,
                name,
                self.batch_size,
                &policy,
                &events,
                &process_event_class,
                stock,
            ) {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Reading the position or the page: nothing was processed.
                    let noted = self.clear_pending(py, false).and_then(|()| {
                        follower
                            .call_method1(
                                intern!(py, "_note_failure"),
                                (error.value(py), name, py.None(), py.None()),
                            )
                            .map(drop)
                    });
                    if let Err(second) = noted {
                        // As an error raised in Python's `except` block is:
                        // the first is its context.
                        second
                            .value(py)
                            .setattr(intern!(py, "__context__"), error.value(py))?;
                        return Err(second);
                    }
                    return Err(error);
                }
            };
            // A policy may have replaced a method during the page (notify,
            // say): then those that follow are called as Python would.
            let unchanged = self.guard.get().unchanged(py, false)?;
            self.clear_pending(py, unchanged)?;
            let page = outcome.page;
            if outcome.is_done() {
                if outcome.count > 0 {
                    self.notify.notify(py, follower, &events, unchanged)?;
                }
            } else {
                let go_on = follower
                    .call_method1(
                        intern!(py, "_finish_kernel_page"),
                        (name, outcome.into_tuple(py), &events),
                    )?
                    .is_truthy()?;
                if !go_on {
                    return Ok(true);
                }
            }
            if page < self.batch_size {
                break;
            }
            // A runner or worker that stops ends the pull at a recorded
            // page (a leader saving as fast as this follower never lets a
            // page come up short).
            if follower
                .call_method0(intern!(py, "_pulls_stop"))?
                .is_truthy()?
            {
                break;
            }
            if !self.applies(py, name)? {
                // Changed during the page (a policy may patch a method):
                // the rest of the pull goes through the Python methods.
                follower.call_method1(intern!(py, "_pull_without_step"), (name, false))?;
                return Ok(true);
            }
        }
        follower.setattr(intern!(py, "processing"), py.None())?;
        Ok(true)
    }
}

impl FollowerPull {
    fn applies(&self, py: Python<'_>, name: &Bound<'_, PyString>) -> PyResult<bool> {
        if !self.guard.get().unchanged(py, true)? {
            return Ok(false);
        }
        match self.readers.bind(py).get_item(name)? {
            Some(entry) if entry.is(self.reader_entry.bind(py)) => {}
            _ => return Ok(false),
        }
        self.kernel.get().guard().unchanged(py, true)
    }

    /// `PendingEvents.clear()`; with `stock` (the guard holds it to be the
    /// stock one), without its Python frame when no index was built.
    fn clear_pending(&self, py: Python<'_>, stock: bool) -> PyResult<()> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        let pending = pending.bind(py);
        if !stock || pending.getattr(intern!(py, "_indexed"))?.is_truthy()? {
            pending.call_method0(intern!(py, "clear"))?;
        } else {
            pending.setattr(intern!(py, "events"), PyList::empty(py))?;
        }
        Ok(())
    }
}

/// The single-threaded runner's prompt loop: takes each queued leader
/// name from the front of `runner.prompts_received` (to which pulls add
/// more) and has each of its followers in `runner._followers_of` pull it,
/// until none is left; both are read again on every turn, as the Python
/// loop read them. A follower's error (an Exception) is turned by
/// `processing_error(follower, name, error)` into what is appended to
/// `errors`, and the loop goes on; anything else (KeyboardInterrupt, say)
/// is raised.
///
/// A follower whose `pull_and_process` is `stock_pull` is pulled through
/// its `FollowerPull` for that leader, if it has one that still applies.
#[pyfunction]
pub fn drain_prompts(
    py: Python<'_>,
    runner: &Bound<'_, PyAny>,
    errors: &Bound<'_, PyList>,
    processing_error: &Bound<'_, PyAny>,
    stock_pull: &Bound<'_, PyAny>,
) -> PyResult<()> {
    loop {
        let prompts = runner.getattr(intern!(py, "prompts_received"))?;
        if !prompts.is_truthy()? {
            return Ok(());
        }
        let prompt = prompts.call_method1(intern!(py, "pop"), (0,))?;
        let followers = runner
            .getattr(intern!(py, "_followers_of"))?
            .get_item(&prompt)?;
        for follower in followers.try_iter()? {
            let follower = follower?;
            if let Err(error) = pull(py, &follower, &prompt, stock_pull) {
                if !error.is_instance_of::<PyException>(py) {
                    return Err(error);
                }
                errors.append(processing_error.call1((&follower, &prompt, error.value(py)))?)?;
            }
        }
    }
}

fn pull(
    py: Python<'_>,
    follower: &Bound<'_, PyAny>,
    prompt: &Bound<'_, PyAny>,
    stock_pull: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if let Some((step, name)) = stock_step(py, follower, prompt, stock_pull)? {
        match step.get().run(py, &name) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // Another instance recorded from where the pull started: the
            // follower's own pull_and_process pulls again until it is not.
            Err(error) if is_overtaken(py, &step, &error)? => {}
            Err(error) => return Err(error),
        }
    }
    follower.call_method1(intern!(py, "pull_and_process"), (prompt,))?;
    Ok(())
}

/// Whether `error` says a batch lost the race with another instance of
/// the follower (system.py's `_Overtaken`), which is not a failure.
fn is_overtaken(py: Python<'_>, step: &Bound<'_, FollowerPull>, error: &PyErr) -> PyResult<bool> {
    let class = step
        .get()
        .process_events_module
        .bind(py)
        .getattr(intern!(py, "_Overtaken"))?;
    error.value(py).is_instance(&class)
}

/// The follower's FollowerPull for the leader named by `prompt`, with the
/// name, when its `pull_and_process` is `stock_pull` (so that calling it
/// would run that pull); else None.
fn stock_step<'py>(
    py: Python<'py>,
    follower: &Bound<'py, PyAny>,
    prompt: &Bound<'py, PyAny>,
    stock_pull: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, FollowerPull>, Bound<'py, PyString>)>> {
    let Ok(name) = prompt.cast::<PyString>() else {
        return Ok(None);
    };
    if !runs_stock_method(follower, intern!(py, "pull_and_process"), stock_pull)? {
        return Ok(None);
    }
    let Ok(steps) = follower
        .getattr(intern!(py, "_pull_steps"))?
        .cast_into::<PyDict>()
    else {
        return Ok(None);
    };
    let step = steps
        .get_item(name)?
        .and_then(|step| step.cast_into::<FollowerPull>().ok());
    Ok(step.map(|step| (step, name.clone())))
}

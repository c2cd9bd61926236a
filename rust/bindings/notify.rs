//! What an application's `notify` does once new events are recorded, done
//! here when its classes' `notify` and `prompt_followers` are the stock
//! ones (`Application.notify` does nothing; `Leader.notify` prompts each
//! follower with the application's class name).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use pyo3::{PyTraverseError, PyVisit};

use super::method_guard::runs_stock_method;

/// How an application notifies.
pub enum Notify {
    /// Through its own `notify` (customised somewhere in its classes).
    Method,
    /// `Application.notify` alone, which does nothing.
    Nothing,
    /// `Leader.notify` over `Application.notify`: `prompt_followers`,
    /// which prompts each of `followers` (the application's own list) with
    /// the name of its class. `runner_receive` is the single-threaded
    /// runner's stock `receive_prompt`, whose effect while the runner is
    /// prompting is queueing the name once.
    Prompt {
        followers: Py<PyList>,
        runner_receive: Py<PyAny>,
    },
}

impl Notify {
    /// From the mode the Python side found: "method", "nothing", or
    /// "prompt" (with the followers list and the runner's method).
    pub fn new(
        mode: &str,
        followers: Option<Py<PyList>>,
        runner_receive: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        match (mode, followers, runner_receive) {
            ("method", _, _) => Ok(Notify::Method),
            ("nothing", _, _) => Ok(Notify::Nothing),
            ("prompt", Some(followers), Some(runner_receive)) => Ok(Notify::Prompt {
                followers,
                runner_receive,
            }),
            (other, _, _) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "notify must be 'method', 'nothing', or 'prompt' with followers and \
                 runner_receive; got {other:?}"
            ))),
        }
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Notify::Prompt {
            followers,
            runner_receive,
        } = self
        {
            visit.call(followers)?;
            visit.call(runner_receive)?;
        }
        Ok(())
    }

    /// `app.notify(events)`; done here when `unchanged` (the caller's guard
    /// says the methods are still the stock ones) and, for "prompt", the
    /// application's followers are still the list it had.
    pub fn notify(
        &self,
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        events: &Bound<'_, PyList>,
        unchanged: bool,
    ) -> PyResult<()> {
        let followers_kept = |followers: &Py<PyList>| -> PyResult<bool> {
            Ok(app
                .getattr(intern!(py, "followers"))?
                .is(followers.bind(py)))
        };
        match self {
            Notify::Nothing if unchanged => {}
            Notify::Prompt {
                followers,
                runner_receive,
            } if unchanged && followers_kept(followers)? => {
                if events.is_empty() {
                    return Ok(());
                }
                let name = app.get_type().name()?;
                for prompted in followers.bind(py).iter() {
                    prompt(py, &prompted, &name, runner_receive.bind(py))?;
                }
            }
            _ => {
                app.call_method1(intern!(py, "notify"), (events,))?;
            }
        }
        Ok(())
    }
}

/// `prompted.receive_prompt(name)`; queued directly when that is the
/// single-threaded runner's stock method and the runner is prompting
/// (then all it does is queue the name, once).
fn prompt(
    py: Python<'_>,
    prompted: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    runner_receive: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let receive = intern!(py, "receive_prompt");
    if runs_stock_method(prompted, receive, runner_receive)?
        && prompted.getattr(intern!(py, "is_prompting"))?.is_truthy()?
    {
        if let Ok(queue) = prompted
            .getattr(intern!(py, "prompts_received"))?
            .cast_into::<PyList>()
        {
            if !queue.contains(name)? {
                queue.append(name)?;
            }
            return Ok(());
        }
    }
    prompted.call_method1(receive, (name,))?;
    Ok(())
}

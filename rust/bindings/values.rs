//! Frozen value types: StoredEvent, Notification (a StoredEvent with an id)
//! and Tracking. They behave like the reference's frozen dataclasses:
//! keyword construction, equality by type and fields, hashing, reprs.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString, PyTuple};

use super::uuids::uuid_to_u128;
use crate::core::tracking::TrackingRecord;

#[pyclass(frozen, subclass, module = "eventsourcing_rs.persistence")]
pub struct StoredEvent {
    #[pyo3(get)]
    pub originator_id: Py<PyAny>,
    #[pyo3(get)]
    pub originator_version: i64,
    #[pyo3(get)]
    pub topic: Py<PyString>,
    #[pyo3(get)]
    pub state: Py<PyBytes>,
    /// The originator id as a number, when it is a UUID (recorders need it).
    pub key: Option<u128>,
}

impl StoredEvent {
    pub fn build(
        originator_id: &Bound<'_, PyAny>,
        originator_version: i64,
        topic: Bound<'_, PyString>,
        state: Bound<'_, PyBytes>,
    ) -> StoredEvent {
        StoredEvent {
            key: uuid_to_u128(originator_id, "originator_id").ok(),
            originator_id: originator_id.clone().unbind(),
            originator_version,
            topic: topic.unbind(),
            state: state.unbind(),
        }
    }

    /// Builds from values already known to be consistent (key matches id).
    pub fn from_parts(
        originator_id: Bound<'_, PyAny>,
        key: u128,
        originator_version: i64,
        topic: Bound<'_, PyString>,
        state: Bound<'_, PyBytes>,
    ) -> StoredEvent {
        StoredEvent {
            key: Some(key),
            originator_id: originator_id.unbind(),
            originator_version,
            topic: topic.unbind(),
            state: state.unbind(),
        }
    }

    pub fn require_key(&self, py: Python<'_>) -> PyResult<u128> {
        match self.key {
            Some(k) => Ok(k),
            None => uuid_to_u128(self.originator_id.bind(py), "originator_id"),
        }
    }

    pub fn clone_ref(&self, py: Python<'_>) -> StoredEvent {
        StoredEvent {
            originator_id: self.originator_id.clone_ref(py),
            originator_version: self.originator_version,
            topic: self.topic.clone_ref(py),
            state: self.state.clone_ref(py),
            key: self.key,
        }
    }

    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.originator_id.bind(py).clone(),
                self.originator_version.into_pyobject(py)?.into_any(),
                self.topic.bind(py).clone().into_any(),
                self.state.bind(py).clone().into_any(),
            ],
        )
    }

    fn field_reprs(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "originator_id={}, originator_version={}, topic={}, state={}",
            self.originator_id.bind(py).repr()?,
            self.originator_version,
            self.topic.bind(py).repr()?,
            self.state.bind(py).repr()?,
        ))
    }
}

/// A stored event's state as bytes: bytes as they are, and a bytearray or
/// memoryview (what a database client may give for a binary column) copied
/// into bytes, as 9.1's recorders would have stored them.
fn state_bytes<'py>(state: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(bytes) = state.cast::<PyBytes>() {
        return Ok(bytes.clone());
    }
    if state.is_instance_of::<PyByteArray>() || state.is_instance_of::<PyMemoryView>() {
        let copied = state.py().get_type::<PyBytes>().call1((state,))?;
        return Ok(copied.cast_into::<PyBytes>()?);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "a stored event's state must be bytes (or a bytearray or memoryview), not {}",
        state.get_type().name()?
    )))
}

/// `==` and `!=` as a dataclass answers them: NotImplemented for an
/// object of another type (or another operator), else what `equal` says
/// of the two.
fn compare_as_dataclass<T: pyo3::PyClass>(
    slf: &Bound<'_, T>,
    other: &Bound<'_, PyAny>,
    op: CompareOp,
    equal: impl FnOnce(&Bound<'_, T>) -> PyResult<bool>,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    if !other.get_type().is(slf.as_any().get_type()) {
        return Ok(py.NotImplemented());
    }
    let equal = equal(other.cast::<T>()?)?;
    match op {
        CompareOp::Eq => Ok(equal.into_pyobject(py)?.to_owned().into_any().unbind()),
        CompareOp::Ne => Ok((!equal).into_pyobject(py)?.to_owned().into_any().unbind()),
        _ => Ok(py.NotImplemented()),
    }
}

#[pymethods]
impl StoredEvent {
    #[new]
    #[pyo3(signature = (originator_id, originator_version, topic, state))]
    fn new(
        originator_id: &Bound<'_, PyAny>,
        originator_version: i64,
        topic: Bound<'_, PyString>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(StoredEvent::build(
            originator_id,
            originator_version,
            topic,
            state_bytes(state)?,
        ))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let name = slf.get_type().qualname()?;
        Ok(format!("{}({})", name, slf.get().field_reprs(slf.py())?))
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        compare_as_dataclass(slf, other, op, |other| {
            let py = slf.py();
            slf.get().fields(py)?.eq(other.get().fields(py)?)
        })
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.fields(py)?.hash()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        Ok((slf.get_type().into_any(), slf.get().fields(py)?))
    }
}

#[pyclass(frozen, extends = StoredEvent, subclass, module = "eventsourcing_rs.persistence")]
pub struct Notification {
    #[pyo3(get)]
    pub id: i64,
}

impl Notification {
    pub fn create(py: Python<'_>, id: i64, event: StoredEvent) -> PyResult<Py<Notification>> {
        Py::new(
            py,
            PyClassInitializer::from(event).add_subclass(Notification { id }),
        )
    }
}

#[pymethods]
impl Notification {
    #[new]
    #[pyo3(signature = (originator_id, originator_version, topic, state, id))]
    fn new(
        originator_id: &Bound<'_, PyAny>,
        originator_version: i64,
        topic: Bound<'_, PyString>,
        state: &Bound<'_, PyAny>,
        id: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(StoredEvent::build(
            originator_id,
            originator_version,
            topic,
            state_bytes(state)?,
        ))
        .add_subclass(Notification { id }))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let base = slf.as_super().get();
        Ok(format!(
            "{}({}, id={})",
            slf.get_type().qualname()?,
            base.field_reprs(slf.py())?,
            slf.get().id
        ))
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        compare_as_dataclass(slf, other, op, |other| {
            let py = slf.py();
            Ok(slf.get().id == other.get().id
                && slf
                    .as_super()
                    .get()
                    .fields(py)?
                    .eq(other.as_super().get().fields(py)?)?)
        })
    }

    fn __hash__(slf: &Bound<'_, Self>) -> PyResult<isize> {
        let py = slf.py();
        let fields = slf.as_super().get().fields(py)?;
        (fields, slf.get().id).into_pyobject(py)?.hash()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let mut items: Vec<Bound<'py, PyAny>> = slf.as_super().get().fields(py)?.iter().collect();
        items.push(slf.get().id.into_pyobject(py)?.into_any());
        Ok((slf.get_type().into_any(), PyTuple::new(py, items)?))
    }
}

#[pyclass(frozen, subclass, module = "eventsourcing_rs.persistence")]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tracking {
    #[pyo3(get)]
    pub application_name: String,
    #[pyo3(get)]
    pub notification_id: i64,
    /// The follower's position for the leader when the batch holding this
    /// notification was read: the record commits only while the stored
    /// position is still this one (see `core::tracking::TrackingRecord`).
    #[pyo3(get)]
    pub previous_id: Option<i64>,
}

impl Tracking {
    /// The record as the stores check it.
    pub fn record(&self) -> TrackingRecord<'_> {
        TrackingRecord {
            application_name: &self.application_name,
            notification_id: self.notification_id,
            previous_id: self.previous_id,
        }
    }
}

#[pymethods]
impl Tracking {
    #[new]
    #[pyo3(signature = (application_name, notification_id, previous_id=None))]
    fn new(application_name: String, notification_id: i64, previous_id: Option<i64>) -> Self {
        Tracking {
            application_name,
            notification_id,
            previous_id,
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let t = slf.get();
        let previous = match t.previous_id {
            Some(id) => format!(", previous_id={id}"),
            None => String::new(),
        };
        Ok(format!(
            "{}(application_name={}, notification_id={}{previous})",
            slf.get_type().qualname()?,
            PyString::new(slf.py(), &t.application_name).repr()?,
            t.notification_id
        ))
    }

    /// Equal to a record of the same type and fields, as a dataclass is.
    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        compare_as_dataclass(slf, other, op, |other| Ok(slf.get() == other.get()))
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (String, i64, Option<i64>))> {
        let t = slf.get();
        Ok((
            slf.get_type().into_any(),
            (t.application_name.clone(), t.notification_id, t.previous_id),
        ))
    }
}

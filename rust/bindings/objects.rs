//! Making the objects of new events and aggregates, for the domain's
//! generated creation functions: what `object.__new__` followed by
//! attribute assignments would make, in one call.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDateTime, PyDict, PyTuple, PyType, PyTzInfo};

use crate::core::datetime_iso::{utc_from_unix_micros, DateTimeFields};

static DATETIME_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `object.__new__(cls)` (refusing abstract classes as it does) with
/// `state` as the new object's `__dict__`.
#[pyfunction]
pub fn instance_with_dict<'py>(
    cls: &Bound<'py, PyType>,
    state: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    new_with_dict(cls, &state)
}

/// What `instance_with_dict` does, for Rust callers.
pub fn new_with_dict<'py>(
    cls: &Bound<'py, PyType>,
    state: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let no_args = PyTuple::empty(py);
    // SAFETY: object's tp_new is called as object.__new__(cls) calls it,
    // with an empty argument tuple and no keywords; the result is checked.
    // The dict is then set as `obj.__dict__ = state` would set it.
    unsafe {
        let object_new = (*std::ptr::addr_of_mut!(pyo3::ffi::PyBaseObject_Type))
            .tp_new
            .expect("object has tp_new");
        let obj = Bound::from_owned_ptr_or_err(
            py,
            object_new(cls.as_type_ptr(), no_args.as_ptr(), std::ptr::null_mut()),
        )?;
        if pyo3::ffi::PyObject_GenericSetDict(obj.as_ptr(), state.as_ptr(), std::ptr::null_mut())
            != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(obj)
    }
}

/// `datetime.now(tz)`: made here from the system clock when `tz` is
/// `timezone.utc`, else asked of Python.
#[pyfunction]
pub fn now<'py>(tz: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = tz.py();
    let utc = PyTzInfo::utc(py)?;
    if !tz.is(&*utc) {
        return DATETIME_CLS
            .import(py, "datetime", "datetime")?
            .call_method1(pyo3::intern!(py, "now"), (tz,));
    }
    // CLOCK_REALTIME, truncated to microseconds, as datetime.now reads it.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| PyOSError::new_err(format!("system clock before 1970: {e}")))?;
    let micros = i64::try_from(since_epoch.as_micros())
        .map_err(|_| PyOSError::new_err("system clock out of range"))?;
    py_datetime(py, &utc_from_unix_micros(micros), Some(&utc.to_owned()))
}

/// A `datetime` with the given fields and time zone (the fields' own
/// offset is not read).
pub fn py_datetime<'py>(
    py: Python<'py>,
    f: &DateTimeFields,
    tz: Option<&Bound<'py, PyTzInfo>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyDateTime::new(
        py,
        f.year,
        f.month,
        f.day,
        f.hour,
        f.minute,
        f.second,
        f.microsecond,
        tz,
    )?
    .into_any())
}

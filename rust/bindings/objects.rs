//! Making new events: an instance of a class with its whole `__dict__` in
//! one call (what `object.__new__` followed by attribute assignments would
//! make), for the domain's generated functions and the mapper's decoder;
//! and timestamps, `datetime.now(tz)` read from the clock here for UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyDateTime, PyDict, PyModule, PyTuple, PyType, PyTzInfo};
use pyo3::PyTypeInfo;

use super::cpython_internals::shortcuts_disabled;
use crate::core::datetime_iso::{utc_from_unix_micros, DateTimeFields};

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
    // with an empty argument tuple and no keywords, once the check that
    // object.__new__ makes first (that `cls` is not built on a C type with
    // its own constructor) has passed; the result is checked. The dict is
    // then set as `obj.__dict__ = state` would set it.
    unsafe {
        let object_new = (*std::ptr::addr_of_mut!(pyo3::ffi::PyBaseObject_Type))
            .tp_new
            .expect("object has tp_new");
        refuse_unsafe(py, cls, object_new as usize)?;
        let obj = Bound::from_owned_ptr_or_err(
            py,
            object_new(cls.as_type_ptr(), no_args.as_ptr(), std::ptr::null_mut()),
        )?;
        set_dict(&obj, state)?;
        Ok(obj)
    }
}

/// Whether instance dicts are set through the type's `__dict__` setter
/// (decided once: reading the version parses a string).
static SET_DICT_BY_SETTER: PyOnceLock<bool> = PyOnceLock::new();

/// `obj.__dict__ = state`. Through `PyObject_GenericSetDict` where that is
/// what the assignment does (CPython 3.11 and 3.12); from 3.13, where
/// instances keep their attributes inline until a dict is asked for, that
/// function replaces the dict pointer but leaves the inline values in
/// charge (so the attributes would not be found), and the assignment
/// itself is made instead, as Python code makes it.
fn set_dict(obj: &Bound<'_, PyAny>, state: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = obj.py();
    if *SET_DICT_BY_SETTER.get_or_init(py, || py.version_info() >= (3, 13) || shortcuts_disabled())
    {
        // object.__setattr__(obj, "__dict__", state): the type's own
        // `__dict__` setter, past any __setattr__ (a frozen dataclass's).
        let name = pyo3::intern!(py, "__dict__");
        // SAFETY: live objects; the call takes its own references.
        let status = unsafe {
            pyo3::ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), state.as_ptr())
        };
        if status != 0 {
            return Err(PyErr::fetch(py));
        }
        return Ok(());
    }
    // SAFETY: a live object and a dict; the call checks both and takes
    // its own reference to the dict.
    let status = unsafe {
        pyo3::ffi::PyObject_GenericSetDict(obj.as_ptr(), state.as_ptr(), std::ptr::null_mut())
    };
    if status != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// The `tp_new` CPython gives classes that define `__new__` in Python.
static PYTHON_DEFINED_NEW: PyOnceLock<usize> = PyOnceLock::new();

/// Raises TypeError, as `object.__new__(cls)` does, when the most derived
/// base of `cls` whose `__new__` is not defined in Python has a
/// constructor other than object's (`object.__new__(dict)`, say, would
/// make a dict its own constructor never set up).
fn refuse_unsafe(py: Python<'_>, cls: &Bound<'_, PyType>, object_new: usize) -> PyResult<()> {
    let python_defined = *PYTHON_DEFINED_NEW.get_or_try_init(py, || {
        let probe = PyModule::from_code(
            py,
            c"class Probe:\n    def __new__(cls):\n        return object.__new__(cls)\n",
            c"<eventsourcing_rs probe>",
            c"_eventsourcing_rs_probe",
        )?
        .getattr("Probe")?
        .cast_into::<PyType>()?;
        // SAFETY: a live type object; the slot is read, not written.
        Ok::<_, PyErr>(unsafe { (*probe.as_type_ptr()).tp_new.map_or(0, |f| f as usize) })
    })?;
    // SAFETY: walks the live type's base chain, reading slots only.
    let static_base_new = unsafe {
        let mut base = cls.as_type_ptr();
        while !base.is_null() && (*base).tp_new.map_or(0, |f| f as usize) == python_defined {
            base = (*base).tp_base;
        }
        if base.is_null() {
            return Ok(());
        }
        (*base).tp_new.map_or(0, |f| f as usize)
    };
    if static_base_new == object_new {
        return Ok(());
    }
    let name = cls.name()?;
    Err(PyTypeError::new_err(format!(
        "object.__new__({name}) is not safe, use {name}.__new__()"
    )))
}

/// `datetime.now(tz)`: made here from the system clock when `tz` is
/// `timezone.utc` and `datetime.now` is CPython's own, else asked of
/// `datetime.now` itself (so that tools which replace it, to move a test's
/// clock, are honoured).
#[pyfunction]
pub fn now<'py>(tz: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = tz.py();
    let utc = PyTzInfo::utc(py)?;
    if !tz.is(&*utc) || now_is_replaced(py) {
        return <PyDateTime as PyTypeInfo>::type_object(py)
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

/// `datetime.now`'s method table entry and the C function it held when the
/// module was loaded (addresses). Tools that move a test's clock, such as
/// time-machine, swap that function in place.
static DATETIME_NOW: PyOnceLock<(usize, usize)> = PyOnceLock::new();

/// Remembers `datetime.now` as it is now; called when the module loads.
pub fn remember_datetime_now(py: Python<'_>) -> PyResult<()> {
    let now = <PyDateTime as PyTypeInfo>::type_object(py).getattr("now")?;
    if !now.is_instance_of::<PyCFunction>() {
        return Ok(());
    }
    // SAFETY: `now` is a builtin method object (checked above), whose
    // method table entry lives as long as the datetime module.
    let entry = unsafe {
        let def = (*now.as_ptr().cast::<pyo3::ffi::PyCFunctionObject>()).m_ml;
        (def as usize, (*def).ml_meth.PyCFunction as usize)
    };
    let _ = DATETIME_NOW.set(py, entry);
    Ok(())
}

/// Whether `datetime.now` is no longer the function it was when the module
/// loaded (or could not be looked at).
fn now_is_replaced(py: Python<'_>) -> bool {
    match DATETIME_NOW.get(py) {
        // SAFETY: the entry lives as long as the datetime module, which
        // stays loaded once imported; the pointer is read, not written.
        Some(&(def, original)) => unsafe {
            (*(def as *const pyo3::ffi::PyMethodDef))
                .ml_meth
                .PyCFunction as usize
                != original
        },
        None => true,
    }
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

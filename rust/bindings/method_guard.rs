//! Whether methods found to be the stock ones still are, told without
//! looking them up again.
//!
//! A follower calls the Rust recorders directly while the Python methods
//! in front of them are the stock ones, and must notice a method replaced
//! later, on a class or an instance. Looking each method up again costs
//! more than the call it saves. CPython gives every type a version tag
//! that changes whenever the type or any of its bases is modified, so a
//! type whose tag is unchanged still has the methods it had; what is left
//! to check is that no instance attribute shadows them.
//!
//! Both that check and the pinned attributes' are made quick with the
//! version CPython gives each dict state (a global counter, taken anew on
//! every change to any dict): while an object's instance dict has the
//! version it had when the guard last looked, and its type is unmodified,
//! neither can have changed, so nothing is looked up again.

use std::os::raw::c_uint;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::cpython_internals::shortcuts_disabled;

struct Watched {
    obj: Py<PyAny>,
    ty: Py<PyType>,
    version: c_uint,
    names: Vec<Py<PyString>>,
    /// The version of the instance dict when none of `names` was in it.
    seen: AtomicU64,
}

/// An attribute whose value must stay the same object.
struct Pinned {
    owner: Py<PyAny>,
    name: Py<PyString>,
    value: Py<PyAny>,
    /// The owner's type and its version tag, when the attribute is read
    /// the generic way and is no data descriptor on the type (so that its
    /// value follows from the type and the instance dict alone); else None.
    plain: Option<(Py<PyType>, c_uint)>,
    /// The version of the owner's instance dict when the attribute was
    /// last found to be `value`.
    seen: AtomicU64,
}

/// Watches objects and the names of methods on them, and attributes that
/// must keep their values. `holds(*subjects)` is true while the objects
/// given are the subjects the guard was made for, each watched object has
/// the type it had, that type (and its bases) is unmodified, no instance
/// attribute has one of the names, and each pinned attribute is the same
/// object it was.
#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct MethodGuard {
    subjects: Vec<Py<PyAny>>,
    watched: Vec<Watched>,
    pinned: Vec<Pinned>,
}

/// Whether this interpreter's type version tags can be relied on here.
/// They are CPython's, and read without atomics: elsewhere (PyPy, a
/// free-threaded build) a guard never holds.
static TAGS_USABLE: PyOnceLock<bool> = PyOnceLock::new();

fn version_tags_usable(py: Python<'_>) -> PyResult<bool> {
    TAGS_USABLE
        .get_or_try_init(py, || interpreter_keeps_version_tags(py))
        .copied()
}

fn interpreter_keeps_version_tags(py: Python<'_>) -> PyResult<bool> {
    if shortcuts_disabled() {
        return Ok(false);
    }
    let sys = py.import("sys")?;
    let cpython = sys
        .getattr("implementation")?
        .getattr("name")?
        .extract::<String>()?
        == "cpython";
    let gil_enabled = match sys.getattr("_is_gil_enabled") {
        Ok(is_enabled) => is_enabled.call0()?.is_truthy()?,
        Err(_) => true,
    };
    Ok(cpython && gil_enabled)
}

fn version_tag(ty: &Bound<'_, PyType>) -> c_uint {
    // SAFETY: `ty` is a live type object; the field is read, not written.
    unsafe { (*ty.as_type_ptr()).tp_version_tag }
}

/// The object's instance dictionary, or None if it has none.
fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = obj.py();
    // SAFETY: `obj` is a live object and the GIL is held. The generic
    // getter returns a new reference, or NULL with an error set when the
    // object has no dictionary; that error is cleared here.
    unsafe {
        let dict = pyo3::ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut());
        if dict.is_null() {
            let _ = PyErr::take(py);
            None
        } else {
            Some(Bound::from_owned_ptr(py, dict))
        }
    }
}

/// Whether dicts carry a version (`ma_version_tag`, changed on every
/// change to a dict) that follows an instance's attributes here: CPython
/// 3.11 and 3.12, after the object header and the item count.
static DICT_VERSIONS: PyOnceLock<bool> = PyOnceLock::new();

fn dict_versions_kept(py: Python<'_>) -> bool {
    *DICT_VERSIONS.get_or_init(py, || {
        let version = py.version_info();
        // Not 3.13: an instance whose attributes are kept inline has them
        // written in place (STORE_ATTR specialised on inline values)
        // without the version of its materialised dict changing.
        !shortcuts_disabled()
            && (version.major, version.minor) >= (3, 11)
            && (version.major, version.minor) <= (3, 12)
    })
}

/// The version of a dict's present state (0 where none is kept).
fn dict_version(dict: &Bound<'_, PyDict>) -> u64 {
    if !dict_versions_kept(dict.py()) {
        return 0;
    }
    let offset =
        std::mem::size_of::<pyo3::ffi::PyObject>() + std::mem::size_of::<pyo3::ffi::Py_ssize_t>();
    // SAFETY: on CPython 3.11 and 3.12 (checked above; guards are not used on
    // free-threaded builds, whose object header differs) a dict object is
    // its header, `Py_ssize_t ma_used`, then `uint64_t ma_version_tag`,
    // which is read here, not written.
    unsafe { std::ptr::read(dict.as_ptr().cast::<u8>().add(offset).cast::<u64>()) }
}

/// Whether `obj`'s type is still `ty`, with version tag `tag` (0, no tag,
/// never matches): the type and its bases are unmodified since.
fn has_type_unmodified(obj: &Bound<'_, PyAny>, ty: &Bound<'_, PyType>, tag: c_uint) -> bool {
    let obj_type = obj.get_type();
    tag != 0 && obj_type.is(ty) && version_tag(&obj_type) == tag
}

/// The version of `owner`'s instance dict, when its type is still `ty` with
/// version tag `tag` (so a plain attribute's value follows from the dict);
/// else 0.
fn plain_dict_version(owner: &Bound<'_, PyAny>, ty: &Bound<'_, PyType>, tag: c_uint) -> u64 {
    if !has_type_unmodified(owner, ty, tag) {
        return 0;
    }
    match instance_dict(owner) {
        Some(dict) => dict.cast::<PyDict>().map_or(0, dict_version),
        None => 0,
    }
}

/// Whether `ty`'s instances give attribute `name` the generic way (no
/// `__getattribute__` or `__getattr__`) and it is no data descriptor on
/// the type (a property or slot, whose value may change while the
/// instance dict does not).
fn is_plain_attribute(ty: &Bound<'_, PyType>, name: &Bound<'_, PyString>) -> PyResult<bool> {
    // SAFETY: a live type object; the slot is read, not written.
    let generic = unsafe {
        (*ty.as_type_ptr()).tp_getattro.map(|f| f as usize)
            == Some(pyo3::ffi::PyObject_GenericGetAttr as *const () as usize)
    };
    if !generic {
        return Ok(false);
    }
    for klass in ty.mro().iter() {
        if let Ok(found) = klass.getattr("__dict__")?.get_item(name) {
            let kind = found.get_type();
            return Ok(!kind.hasattr("__set__")? && !kind.hasattr("__delete__")?);
        }
    }
    Ok(true)
}

/// Whether `obj`'s class gives `name` as `stock` and no instance attribute
/// shadows it: the method a call of `obj.name(...)` would run is the stock
/// one. False (not an error) where the class has no such attribute.
pub fn runs_stock_method(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    stock: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let on_class = obj.get_type().getattr(name);
    Ok(on_class.is_ok_and(|method| method.is(stock)) && !has_instance_attribute(obj, name)?)
}

/// Whether the object's instance dictionary has `name` (which would
/// shadow a method of its class).
fn has_instance_attribute(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<bool> {
    match instance_dict(obj) {
        None => Ok(false),
        Some(found) => match found.cast::<PyDict>() {
            Ok(dict) => dict.contains(name),
            // A mapping other than a dict, which CPython allows.
            Err(_) => found.contains(name),
        },
    }
}

#[pymethods]
impl MethodGuard {
    /// What the guard holds, shown to the cyclic garbage collector (a
    /// follower keeps its guards, and they its recorder, store and log).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for subject in &self.subjects {
            visit.call(subject)?;
        }
        for w in &self.watched {
            visit.call(&w.obj)?;
            visit.call(&w.ty)?;
        }
        for p in &self.pinned {
            visit.call(&p.owner)?;
            visit.call(&p.value)?;
        }
        Ok(())
    }

    #[new]
    #[pyo3(signature = (watched, pinned=Vec::new(), subjects=Vec::new()))]
    fn new(
        py: Python<'_>,
        watched: Vec<(Bound<'_, PyAny>, Vec<String>)>,
        pinned: Vec<(Bound<'_, PyAny>, String)>,
        subjects: Vec<Py<PyAny>>,
    ) -> PyResult<Self> {
        let mut entries = Vec::with_capacity(watched.len());
        for (obj, names) in watched {
            let ty = obj.get_type();
            let names: Vec<Py<PyString>> = names
                .iter()
                .map(|n| PyString::intern(py, n).unbind())
                .collect();
            // Looking a name up on the type gives it a version tag if it
            // has none (a tag of 0 means none, and the guard never holds).
            for name in &names {
                let _ = ty.getattr(name.bind(py));
            }
            entries.push(Watched {
                obj: obj.unbind(),
                version: version_tag(&ty),
                ty: ty.unbind(),
                names,
                seen: AtomicU64::new(0),
            });
        }
        let mut pins = Vec::with_capacity(pinned.len());
        for (owner, name) in pinned {
            let name = PyString::intern(py, &name);
            let value = owner.getattr(&name)?;
            let ty = owner.get_type();
            let plain = if is_plain_attribute(&ty, &name)? {
                Some((ty.clone().unbind(), version_tag(&ty)))
            } else {
                None
            };
            pins.push(Pinned {
                owner: owner.unbind(),
                name: name.unbind(),
                value: value.unbind(),
                plain,
                seen: AtomicU64::new(0),
            });
        }
        Ok(MethodGuard {
            subjects,
            watched: entries,
            pinned: pins,
        })
    }

    /// True while `subjects` are those the guard was made for and every
    /// watched method is still the one first found.
    #[pyo3(signature = (*subjects))]
    fn holds(&self, py: Python<'_>, subjects: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if subjects.len() != self.subjects.len()
            || !subjects
                .iter()
                .zip(&self.subjects)
                .all(|(given, kept)| given.is(kept.bind(py)))
        {
            return Ok(false);
        }
        self.unchanged(py, true)
    }
}

impl MethodGuard {
    /// True while every watched method is still the one first found and,
    /// with `pins`, every pinned attribute the same object (the subjects
    /// are not checked).
    pub fn unchanged(&self, py: Python<'_>, pins: bool) -> PyResult<bool> {
        if !version_tags_usable(py)? {
            return Ok(false);
        }
        for w in &self.watched {
            let obj = w.obj.bind(py);
            if !has_type_unmodified(obj, w.ty.bind(py), w.version) {
                return Ok(false);
            }
            if w.names.is_empty() {
                continue;
            }
            let Some(dict) = instance_dict(obj) else {
                // No instance dictionary: nothing can shadow the methods.
                continue;
            };
            let Ok(dict) = dict.cast::<PyDict>() else {
                return Ok(false);
            };
            let seen = dict_version(dict);
            if seen != 0 && seen == w.seen.load(Ordering::Relaxed) {
                continue;
            }
            for name in &w.names {
                if dict.contains(name.bind(py))? {
                    return Ok(false);
                }
            }
            w.seen.store(seen, Ordering::Relaxed);
        }
        for p in self.pinned.iter().filter(|_| pins) {
            let owner = p.owner.bind(py);
            let seen = match &p.plain {
                Some((ty, tag)) => plain_dict_version(owner, ty.bind(py), *tag),
                None => 0,
            };
            if seen != 0 && seen == p.seen.load(Ordering::Relaxed) {
                continue;
            }
            match owner.getattr(p.name.bind(py)) {
                Ok(value) if value.is(p.value.bind(py)) => {}
                _ => return Ok(false),
            }
            p.seen.store(seen, Ordering::Relaxed);
        }
        Ok(true)
    }
}

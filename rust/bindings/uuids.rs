//! Fast conversion between `uuid.UUID` objects and `u128`.

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;

use super::cpython_internals::shortcuts_disabled;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static UUID_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SAFE_UNKNOWN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub fn uuid_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    UUID_CLS.import(py, "uuid", "UUID")
}

/// The 128-bit value of a `uuid.UUID` (or subclass); a clear TypeError
/// naming the value for anything else.
pub fn uuid_to_u128(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u128> {
    let py = obj.py();
    let cls = uuid_class(py)?;
    if obj.get_type().is(cls) {
        if let Some(slots) = slot_offsets(py, cls)? {
            // SAFETY: `obj` is exactly a `uuid.UUID`, whose `int` slot is at
            // this offset (read from its member descriptor); a set slot
            // holds a strong reference, borrowed here while `obj` lives.
            let int = unsafe {
                let at = obj
                    .as_ptr()
                    .cast::<u8>()
                    .offset(slots.int)
                    .cast::<*mut ffi::PyObject>();
                Bound::from_borrowed_ptr_or_opt(py, *at)
            };
            if let Some(int) = int {
                return int.extract::<u128>();
            }
        }
    }
    if obj.is_instance(cls)? {
        obj.getattr(intern!(py, "int"))?.extract::<u128>()
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be a uuid.UUID, got {}",
            obj.repr()?
        )))
    }
}

/// Where a `uuid.UUID` keeps its `int` and `is_safe` slots (byte offsets
/// into the object), read from the class's member descriptors.
#[derive(Clone, Copy)]
struct SlotOffsets {
    int: isize,
    is_safe: isize,
}

static SLOT_OFFSETS: PyOnceLock<Option<SlotOffsets>> = PyOnceLock::new();

/// The slots' offsets, or None where `uuid.UUID` does not keep them as
/// plain object slots (then they are set and read by attribute).
fn slot_offsets(py: Python<'_>, cls: &Bound<'_, PyType>) -> PyResult<Option<SlotOffsets>> {
    SLOT_OFFSETS
        .get_or_try_init(py, || {
            if shortcuts_disabled() {
                return Ok(None);
            }
            let member_type = py.import("types")?.getattr("MemberDescriptorType")?;
            let offset = |name: &str| -> PyResult<Option<isize>> {
                let Ok(descr) = cls.getattr("__dict__")?.get_item(name) else {
                    return Ok(None);
                };
                if !descr.get_type().is(&member_type) {
                    return Ok(None);
                }
                // SAFETY: `descr` is a member descriptor (checked above),
                // whose member definition lives as long as its class.
                let member =
                    unsafe { &*(*descr.as_ptr().cast::<ffi::PyMemberDescrObject>()).d_member };
                Ok((member.type_code == ffi::Py_T_OBJECT_EX).then_some(member.offset))
            };
            Ok::<_, PyErr>(match (offset("int")?, offset("is_safe")?) {
                (Some(int), Some(is_safe)) => Some(SlotOffsets { int, is_safe }),
                _ => None,
            })
        })
        .copied()
}

/// Builds a `uuid.UUID` without running its `__init__` argument parsing:
/// allocates the object as `object.__new__` would and fills the two slots
/// that `__init__` sets (directly where their offsets are known, else
/// through the generic attribute setter, which is what
/// `object.__setattr__` calls).
pub fn u128_to_uuid(py: Python<'_>, value: u128) -> PyResult<Bound<'_, PyAny>> {
    let cls = uuid_class(py)?;
    let safe_unknown = SAFE_UNKNOWN.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("uuid")?
                .getattr("SafeUUID")?
                .getattr("unknown")?
                .unbind(),
        )
    })?;
    let int = value.into_pyobject(py)?;
    let slots = slot_offsets(py, cls)?;
    // SAFETY: `cls` is the `uuid.UUID` type (a plain class with __slots__),
    // so allocating it with its own tp_alloc and filling its slot members
    // is what object.__new__ and object.__setattr__ do: a new object's
    // slots are NULL, and each is given a strong reference. Every returned
    // pointer is checked.
    unsafe {
        let tp = cls.as_type_ptr();
        let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let obj = Bound::from_owned_ptr_or_err(py, alloc(tp, 0))?;
        if let Some(slots) = slots {
            let base = obj.as_ptr().cast::<u8>();
            *base.offset(slots.int).cast::<*mut ffi::PyObject>() = int.into_ptr();
            *base.offset(slots.is_safe).cast::<*mut ffi::PyObject>() =
                safe_unknown.clone_ref(py).into_ptr();
            return Ok(obj);
        }
        if ffi::PyObject_GenericSetAttr(obj.as_ptr(), intern!(py, "int").as_ptr(), int.as_ptr())
            != 0
        {
            return Err(PyErr::fetch(py));
        }
        if ffi::PyObject_GenericSetAttr(
            obj.as_ptr(),
            intern!(py, "is_safe").as_ptr(),
            safe_unknown.as_ptr(),
        ) != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(obj)
    }
}

/// The canonical hyphenated text form, as `str(uuid)` gives it.
pub fn u128_to_hyphenated(value: u128) -> String {
    let h = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Sets the version (4) and variant (RFC 4122) bits, as `uuid.uuid4` does.
pub fn version4(random: u128) -> u128 {
    let mut n = random;
    n &= !(0xc000u128 << 48);
    n |= 0x8000u128 << 48;
    n &= !(0xf000u128 << 64);
    n |= 4u128 << 76;
    n
}

/// A random (version 4) UUID from the operating system's generator: what
/// `uuid.uuid4()` returns, made without its Python-level overhead.
#[pyfunction]
pub fn uuid4(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let random = crate::core::random_pool::random_u128().map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!("no random bytes from the OS: {e}"))
    })?;
    u128_to_uuid(py, version4(random))
}

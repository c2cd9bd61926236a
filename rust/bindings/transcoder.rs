//! The JSON transcoder's engine: Python objects to JSON bytes and back,
//! with the standard transcodings (UUID, Decimal, datetime) done natively
//! and user transcodings called through their `encode`/`decode` methods.

use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDateAccess, PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyFloat, PyInt,
    PyList, PyString, PyTimeAccess, PyTuple, PyType, PyTzInfo, PyTzInfoAccess,
};

use super::key_cache::KeyCache;
use super::uuids::{u128_to_uuid, uuid_class, uuid_to_u128};
use crate::core::datetime_iso::{parse_iso, write_iso, DateTimeFields};
use crate::core::float_repr::python_float_repr;
use crate::core::json::{self, BuildError};

/// As deep as Python's json encodes under the default recursion limit
/// (about a thousand levels); stops runaway structures.
const MAX_DEPTH: usize = 1000;

static DECIMAL_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ENCODE_BASESTRING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq)]
enum Native {
    Uuid,
    Decimal,
    Datetime,
}

enum Codec {
    Native(Native),
    Custom(Py<PyAny>),
}

struct Entry {
    name: String,
    codec: Codec,
}

#[pyclass(module = "eventsourcing_rs._core")]
pub struct JsonCodec {
    /// Keyed by the address of the type object, which `_types` keeps alive.
    by_type: HashMap<usize, Entry, foldhash::fast::RandomState>,
    by_name: HashMap<String, Entry, foldhash::fast::RandomState>,
    _types: Vec<Py<PyType>>,
    keys: KeyCache,
}

fn native_kind(kind: &str) -> PyResult<Native> {
    match kind {
        "uuid" => Ok(Native::Uuid),
        "decimal" => Ok(Native::Decimal),
        "datetime" => Ok(Native::Datetime),
        other => Err(PyValueError::new_err(format!(
            "unknown native transcoding kind '{other}'"
        ))),
    }
}

impl JsonCodec {
    /// Encodes an event's attribute dict as the mapper stores it: without
    /// the keys in `skip`, and with `extra` appended, exactly as encoding a
    /// copy with those keys popped and `extra` added would.
    pub fn encode_state<'py>(
        &self,
        dict: &Bound<'py, PyDict>,
        skip: &[&str],
        extra: Option<(&str, &Bound<'py, PyAny>)>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        with_scratch(|out, path| {
            path.push(dict.as_ptr() as usize);
            self.write_state(dict, skip, extra, out, path)?;
            Ok(PyBytes::new(dict.py(), out))
        })
    }

    fn write_state(
        &self,
        dict: &Bound<'_, PyDict>,
        skip: &[&str],
        extra: Option<(&str, &Bound<'_, PyAny>)>,
        out: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> PyResult<()> {
        out.push(b'{');
        let mut first = true;
        for (k, v) in dict.iter() {
            if let Ok(key) = k.cast::<PyString>() {
                if let Ok(text) = key.to_str() {
                    if skip.contains(&text) {
                        continue;
                    }
                }
            }
            if !first {
                out.extend_from_slice(b", ");
            }
            first = false;
            write_key(&k, out)?;
            out.extend_from_slice(b": ");
            self.write(&v, out, path)?;
        }
        if let Some((key, value)) = extra {
            if !first {
                out.extend_from_slice(b", ");
            }
            json::write_str(out, key);
            out.extend_from_slice(b": ");
            self.write(value, out, path)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn add(&mut self, ty: Bound<'_, PyType>, name: String, make: impl Fn() -> Codec) {
        self.by_type.insert(
            ty.as_ptr() as usize,
            Entry {
                name: name.clone(),
                codec: make(),
            },
        );
        self.by_name.insert(
            name.clone(),
            Entry {
                name,
                codec: make(),
            },
        );
        self._types.push(ty.unbind());
    }
}

#[pymethods]
impl JsonCodec {
    #[new]
    fn new() -> Self {
        JsonCodec {
            by_type: HashMap::default(),
            by_name: HashMap::default(),
            _types: Vec::new(),
            keys: KeyCache::default(),
        }
    }

    /// Registers one of the standard transcodings, done natively.
    fn register_native(&mut self, ty: Bound<'_, PyType>, name: String, kind: &str) -> PyResult<()> {
        let kind = native_kind(kind)?;
        self.add(ty, name, || Codec::Native(kind));
        Ok(())
    }

    /// Registers a user transcoding object with `encode` and `decode`.
    fn register_custom(
        &mut self,
        ty: Bound<'_, PyType>,
        name: String,
        transcoding: Bound<'_, PyAny>,
    ) {
        let py = ty.py();
        let t = transcoding.unbind();
        self.add(ty, name, || Codec::Custom(t.clone_ref(py)));
    }

    fn encode<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        with_scratch(|out, path| {
            self.write(obj, out, path)?;
            Ok(PyBytes::new(obj.py(), out))
        })
    }

    /// Decodes JSON bytes. Raises ValueError, its message beginning
    /// "invalid JSON: ", for text this parser does not accept; the Python
    /// side retries those with the `json` module, which also accepts lone
    /// surrogates in strings and deeper nesting.
    pub fn decode<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        match self.decode_native(py, data) {
            Ok(v) => Ok(v),
            Err(BuildError::Syntax(e)) => Err(PyValueError::new_err(format!("invalid JSON: {e}"))),
            Err(BuildError::Build(e)) => Err(e),
        }
    }
}

impl JsonCodec {
    /// Appends the JSON text of `obj`. `path` holds the addresses of the
    /// containers (and transcoded objects) being written around it, which
    /// is how json detects circular references.
    fn write(
        &self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> PyResult<()> {
        let py = obj.py();
        if obj.is_none() {
            out.extend_from_slice(b"null");
        } else if let Ok(b) = obj.cast::<PyBool>() {
            out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        } else if let Ok(s) = obj.cast::<PyString>() {
            write_py_str(s, out)?;
        } else if let Ok(i) = obj.cast::<PyInt>() {
            write_int(i, out)?;
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            write_float(f.value(), out);
        } else if let Ok(list) = obj.cast_exact::<PyList>() {
            enter(obj, path)?;
            self.write_seq(list.iter(), out, path)?;
            path.pop();
        } else if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
            enter(obj, path)?;
            self.write_seq(tuple.iter(), out, path)?;
            path.pop();
        } else if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            // Like json, subclasses are encoded by iterating them.
            enter(obj, path)?;
            let items = obj.try_iter()?.collect::<PyResult<Vec<_>>>()?;
            self.write_seq(items.into_iter(), out, path)?;
            path.pop();
        } else if let Ok(dict) = obj.cast_exact::<PyDict>() {
            enter(obj, path)?;
            self.write_members(dict.iter().map(Ok), out, path)?;
            path.pop();
        } else if let Ok(dict) = obj.cast::<PyDict>() {
            // Like json, a subclass's own items() gives its members (when
            // it holds any).
            if dict.is_empty() {
                out.extend_from_slice(b"{}");
            } else {
                enter(obj, path)?;
                let items = obj.call_method0(intern!(py, "items"))?;
                let members = items.try_iter()?.map(|item| {
                    let item = item?;
                    match item.cast::<PyTuple>() {
                        Ok(pair) if pair.len() == 2 => Ok((pair.get_item(0)?, pair.get_item(1)?)),
                        _ => Err(PyValueError::new_err("items must return 2-tuples")),
                    }
                });
                self.write_members(members, out, path)?;
                path.pop();
            }
        } else {
            self.write_transcoded(obj, out, path)?;
        }
        Ok(())
    }

    fn write_members<'py>(
        &self,
        members: impl Iterator<Item = PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>>,
        out: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> PyResult<()> {
        out.push(b'{');
        for (i, member) in members.enumerate() {
            let (k, v) = member?;
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write_key(&k, out)?;
            out.extend_from_slice(b": ");
            self.write(&v, out, path)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn write_seq<'py>(
        &self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        out: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> PyResult<()> {
        out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            self.write(&item, out, path)?;
        }
        out.push(b']');
        Ok(())
    }

    fn write_transcoded(
        &self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> PyResult<()> {
        let py = obj.py();
        let ty = obj.get_type();
        let Some(entry) = self.by_type.get(&(ty.as_ptr() as usize)) else {
            return Err(PyTypeError::new_err(format!(
                "Object of type {} is not serializable. Please define and register \
                 a custom transcoding for this type.",
                ty.repr()?
            )));
        };
        out.extend_from_slice(b"{\"_type_\": ");
        json::write_str(out, &entry.name);
        out.extend_from_slice(b", \"_data_\": ");
        match &entry.codec {
            Codec::Native(Native::Uuid) => {
                let n = uuid_to_u128(obj, "a UUID")?;
                out.push(b'"');
                json::write_hex128(out, n);
                out.push(b'"');
            }
            Codec::Native(Native::Decimal) => write_py_str(&obj.str()?, out)?,
            Codec::Native(Native::Datetime) => match native_datetime_fields(obj)? {
                Some(fields) => {
                    // ISO text is ASCII with nothing to escape.
                    out.push(b'"');
                    write_iso(out, &fields);
                    out.push(b'"');
                }
                None => {
                    let text = obj.call_method0(intern!(py, "isoformat"))?;
                    write_py_str(text.cast::<PyString>()?, out)?;
                }
            },
            Codec::Custom(t) => {
                enter(obj, path)?;
                let data = t.bind(py).call_method1(intern!(py, "encode"), (obj,))?;
                self.write(&data, out, path)?;
                path.pop();
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Decodes JSON bytes straight into Python objects, telling text the
    /// parser refuses apart from errors raised while building.
    pub fn decode_native<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
    ) -> Result<Bound<'py, PyAny>, BuildError<PyErr>> {
        json::parse_with(data, &mut PyBuilder { codec: self, py })
    }

    fn decode_transcoded<'py>(
        &self,
        py: Python<'py>,
        type_name: Bound<'py, PyAny>,
        data: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Ok(name) = type_name.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "Data serialized with name {} is not deserializable. Please register \
                 a custom transcoding for this type.",
                type_name.repr()?
            )));
        };
        let text = data.cast::<PyString>().ok().and_then(|s| s.to_str().ok());
        self.decode_named(py, name.to_str()?, text, || Ok(data.clone()))
    }

    /// Decodes the data of a transcoded value by its transcoding's name.
    /// `text` is the data when it is a string; `data` makes the data as a
    /// Python object, for what is not done natively.
    fn decode_named<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        text: Option<&str>,
        data: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(entry) = self.by_name.get(name) else {
            return Err(PyTypeError::new_err(format!(
                "Data serialized with name '{name}' is not deserializable. Please register \
                 a custom transcoding for this type."
            )));
        };
        match &entry.codec {
            Codec::Native(Native::Uuid) => match text {
                Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u128_to_uuid(py, u128::from_str_radix(hex, 16).expect("checked hex"))
                }
                _ => uuid_class(py)?.call1((data()?,)),
            },
            Codec::Native(Native::Decimal) => DECIMAL_CLS
                .import(py, "decimal", "Decimal")?
                .call1((data()?,)),
            Codec::Native(Native::Datetime) => {
                match text
                    .and_then(parse_iso)
                    .filter(|f| f.offset_micros.is_none_or(|o| o == 0))
                {
                    Some(f) => {
                        let utc;
                        let tz = match f.offset_micros {
                            Some(_) => {
                                utc = PyTzInfo::utc(py)?.to_owned();
                                Some(&utc)
                            }
                            None => None,
                        };
                        super::objects::py_datetime(py, &f, tz)
                    }
                    None => DATETIME_CLS
                        .import(py, "datetime", "datetime")?
                        .call_method1(intern!(py, "fromisoformat"), (data()?,)),
                }
            }
            Codec::Custom(t) => t.bind(py).call_method1(intern!(py, "decode"), (data()?,)),
        }
    }
}

thread_local! {
    /// Output and path buffers reused by the encodes on this thread, which
    /// would otherwise allocate and free them for every event.
    static SCRATCH: RefCell<(Vec<u8>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Buffers kept for reuse are at most this large; a rare huge event's are
/// freed after it.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `f` with empty scratch buffers. They are taken out of the
/// thread's slot rather than borrowed: an encode that calls back into
/// Python (a user transcoding) may encode again on this thread, and that
/// one then gets fresh buffers.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>, &mut Vec<usize>) -> R) -> R {
    let (mut out, mut path) = SCRATCH.with(|slot| std::mem::take(&mut *slot.borrow_mut()));
    out.clear();
    path.clear();
    let result = f(&mut out, &mut path);
    if out.capacity() <= SCRATCH_KEEP {
        SCRATCH.with(|slot| *slot.borrow_mut() = (out, path));
    }
    result
}

/// Builds Python objects as the parser reads, bottom-up, so transcoded
/// objects are decoded innermost first, as Python's json `object_hook` is.
struct PyBuilder<'a, 'py> {
    codec: &'a JsonCodec,
    py: Python<'py>,
}

impl<'py> json::Builder for PyBuilder<'_, 'py> {
    type Value = Bound<'py, PyAny>;
    type Error = PyErr;

    fn null(&mut self) -> PyResult<Self::Value> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn boolean(&mut self, value: bool) -> PyResult<Self::Value> {
        Ok(PyBool::new(self.py, value).to_owned().into_any())
    }
    fn int(&mut self, value: i64) -> PyResult<Self::Value> {
        Ok(value.into_pyobject(self.py)?.into_any())
    }
    fn big_int(&mut self, digits: &str) -> PyResult<Self::Value> {
        self.py.get_type::<PyInt>().call1((digits,))
    }
    fn float(&mut self, value: f64) -> PyResult<Self::Value> {
        Ok(PyFloat::new(self.py, value).into_any())
    }
    fn string(&mut self, value: &str) -> PyResult<Self::Value> {
        new_str(self.py, value)
    }
    fn key(&mut self, value: &str) -> PyResult<Self::Value> {
        match self.codec.keys.get(self.py, value) {
            Some(key) => Ok(key.into_any()),
            None => new_str(self.py, value),
        }
    }
    fn tagged(&mut self, type_name: &str, data: &str) -> PyResult<Self::Value> {
        let py = self.py;
        self.codec
            .decode_named(py, type_name, Some(data), || new_str(py, data))
    }
    fn array(&mut self, items: Vec<Self::Value>) -> PyResult<Self::Value> {
        Ok(PyList::new(self.py, items)?.into_any())
    }
    fn object(&mut self, members: Vec<(Self::Value, Self::Value)>) -> PyResult<Self::Value> {
        // As json's object_hook sees it: after duplicate keys collapse,
        // exactly the keys "_type_" and "_data_" (the last value of each).
        if members.len() >= 2 {
            let mut type_name = None;
            let mut data = None;
            let mut only_those = true;
            for (k, v) in &members {
                match k.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
                    Some("_type_") => type_name = Some(v),
                    Some("_data_") => data = Some(v),
                    _ => {
                        only_those = false;
                        break;
                    }
                }
            }
            if let (true, Some(t), Some(d)) = (only_those, type_name, data) {
                return self.codec.decode_transcoded(self.py, t.clone(), d.clone());
            }
        }
        let dict = PyDict::new(self.py);
        for (k, v) in members {
            dict.set_item(k, v)?;
        }
        Ok(dict.into_any())
    }
}

/// A Python str from Rust text. Most text in events is ASCII: that is
/// copied straight into a new compact ASCII string, skipping the UTF-8
/// decoder; anything else goes through it.
fn new_str<'py>(py: Python<'py>, value: &str) -> PyResult<Bound<'py, PyAny>> {
    if !value.is_ascii() {
        return Ok(PyString::new(py, value).into_any());
    }
    // SAFETY: PyUnicode_New(n, 127) makes a compact ASCII string with room
    // for n one-byte characters (and its terminator), which PyUnicode_DATA
    // points at; the bytes copied in are all ASCII.
    unsafe {
        let obj = pyo3::ffi::PyUnicode_New(value.len() as pyo3::ffi::Py_ssize_t, 127);
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        let data = pyo3::ffi::PyUnicode_DATA(obj.as_ptr()) as *mut u8;
        std::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        Ok(obj)
    }
}

/// Notes that `obj` is being written, failing as json does when it is
/// already being written further out (a circular reference), or when the
/// nesting is too deep to follow.
fn enter(obj: &Bound<'_, PyAny>, path: &mut Vec<usize>) -> PyResult<()> {
    let address = obj.as_ptr() as usize;
    if path.contains(&address) {
        return Err(PyValueError::new_err("Circular reference detected"));
    }
    if path.len() >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "Nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    path.push(address);
    Ok(())
}

/// The fields `dt.isoformat()` writes, read here for exact datetimes whose
/// time zone is none, UTC or a fixed offset; None means "ask Python"
/// (subclasses, other zones).
fn native_datetime_fields(obj: &Bound<'_, PyAny>) -> PyResult<Option<DateTimeFields>> {
    let py = obj.py();
    let Ok(dt) = obj.cast_exact::<PyDateTime>() else {
        return Ok(None);
    };
    let offset_micros = match dt.get_tzinfo() {
        None => None,
        Some(tz) if tz.is(&*PyTzInfo::utc(py)?) => Some(0),
        Some(tz) => {
            // Only the stdlib's fixed-offset timezone is safe to ask once
            // for its offset; zoneinfo and others depend on the instant.
            if !tz.get_type().is(PyTzInfo::utc(py)?.get_type()) {
                return Ok(None);
            }
            let delta = tz.call_method1(intern!(py, "utcoffset"), (dt,))?;
            let delta = delta.cast::<PyDelta>()?;
            Some(
                (i64::from(delta.get_days()) * 86_400 + i64::from(delta.get_seconds())) * 1_000_000
                    + i64::from(delta.get_microseconds()),
            )
        }
    };
    Ok(Some(DateTimeFields {
        year: dt.get_year(),
        month: dt.get_month(),
        day: dt.get_day(),
        hour: dt.get_hour(),
        minute: dt.get_minute(),
        second: dt.get_second(),
        microsecond: dt.get_microsecond(),
        offset_micros,
    }))
}

fn write_py_str(s: &Bound<'_, PyString>, out: &mut Vec<u8>) -> PyResult<()> {
    match s.to_str() {
        Ok(text) => json::write_str(out, text),
        Err(_) => {
            // Lone surrogates cannot be UTF-8; Python's own escaper takes them.
            let py = s.py();
            let escape = ENCODE_BASESTRING.get_or_try_init(py, || {
                Ok::<_, PyErr>(
                    py.import("json.encoder")?
                        .getattr("encode_basestring_ascii")?
                        .unbind(),
                )
            })?;
            let escaped = escape.bind(py).call1((s,))?;
            out.extend_from_slice(escaped.cast::<PyString>()?.to_str()?.as_bytes());
        }
    }
    Ok(())
}

fn write_int(i: &Bound<'_, PyInt>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(n) = i.extract::<i64>() {
        out.extend_from_slice(n.to_string().as_bytes());
    } else {
        // Big ints (and int subclasses with their own __repr__) print as int does.
        let py = i.py();
        let plain = py.get_type::<PyInt>().call1((i,))?;
        out.extend_from_slice(plain.repr()?.to_str()?.as_bytes());
    }
    Ok(())
}

fn write_float(x: f64, out: &mut Vec<u8>) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.extend_from_slice(python_float_repr(x).as_bytes());
    }
}

fn write_key(key: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(s) = key.cast::<PyString>() {
        write_py_str(s, out)
    } else if let Ok(b) = key.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() {
            b"\"true\""
        } else {
            b"\"false\""
        });
        Ok(())
    } else if let Ok(i) = key.cast::<PyInt>() {
        out.push(b'"');
        write_int(i, out)?;
        out.push(b'"');
        Ok(())
    } else if let Ok(f) = key.cast::<PyFloat>() {
        out.push(b'"');
        write_float(f.value(), out);
        out.push(b'"');
        Ok(())
    } else if key.is_none() {
        out.extend_from_slice(b"\"null\"");
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!(
            "keys must be str, int, float, bool or None, not {}",
            key.get_type().name()?
        )))
    }
}

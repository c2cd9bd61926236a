//! The mapper's hot path: domain events to stored events and back in one
//! call each. The transcoder's JSON engine, the optional compressor and
//! cipher (Python objects) and topic resolution are used as the Python
//! `Mapper` would use them; topics and class versions are cached per class.

use std::collections::HashMap;

use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};

use super::errors::DataError;
use super::transcoder::JsonCodec;
use super::uuids::uuid_to_u128;
use super::values::StoredEvent;
use crate::core::json::BuildError;

/// What the mapper learnt about a domain event class.
struct ClassInfo {
    class_version: i64,
    /// Its topic, found when an event of the class is first stored.
    topic: PyOnceLock<Py<PyString>>,
}

/// A class kept alive with what the mapper learnt about it.
type CachedClass = (Py<PyAny>, std::sync::Arc<ClassInfo>);

#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct EventMapper {
    codec: Py<JsonCodec>,
    /// The Python transcoder: decodes what the Rust parser refuses.
    transcoder: Py<PyAny>,
    compressor: Option<Py<PyAny>>,
    cipher: Option<Py<PyAny>>,
    /// The cipher binds each ciphertext to its event's aggregate id and
    /// version (`bound_to_position`): it is called with them.
    cipher_bound: bool,
    get_topic: Py<PyAny>,
    resolve_topic: Py<PyAny>,
    /// By address of the class object, which the entry keeps alive.
    classes: Mutex<HashMap<usize, CachedClass, foldhash::fast::RandomState>>,
    topic_cache: Py<PyDict>,
}

fn class_version(cls: &Bound<'_, PyAny>) -> PyResult<i64> {
    match cls.getattr(intern!(cls.py(), "class_version")) {
        Ok(v) => v.extract(),
        Err(_) => Ok(1),
    }
}

/// `data` passed through `hook.method(data)` when there is a hook (the
/// mapper's compressor or cipher), else `data` itself.
fn through<'py>(
    hook: &Option<Py<PyAny>>,
    method: &Bound<'py, PyString>,
    data: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    match hook {
        Some(hook) => hook.bind(data.py()).call_method1(method, (data,)),
        None => Ok(data),
    }
}

fn add_note(py: Python<'_>, err: &PyErr, note: String) {
    let _ = err.value(py).call_method1(intern!(py, "add_note"), (note,));
}

impl EventMapper {
    fn class_info(&self, cls: &Bound<'_, PyAny>) -> PyResult<std::sync::Arc<ClassInfo>> {
        let key = cls.as_ptr() as usize;
        if let Some((_, info)) = self.classes.lock().get(&key) {
            return Ok(info.clone());
        }
        let info = std::sync::Arc::new(ClassInfo {
            class_version: class_version(cls)?,
            topic: PyOnceLock::new(),
        });
        self.classes
            .lock()
            .insert(key, (cls.clone().unbind(), info.clone()));
        Ok(info)
    }

    fn topic<'py>(
        &self,
        cls: &Bound<'py, PyType>,
        info: &ClassInfo,
    ) -> PyResult<Bound<'py, PyString>> {
        let py = cls.py();
        let topic = info.topic.get_or_try_init(py, || {
            Ok::<_, PyErr>(
                self.get_topic
                    .bind(py)
                    .call1((cls,))?
                    .cast_into::<PyString>()?
                    .unbind(),
            )
        })?;
        Ok(topic.bind(py).clone())
    }

    /// The class a topic names, through the topic cache of
    /// `eventsourcing_rs.utils` so that clearing it (to deploy a new
    /// version of a class) is honoured, and its class version.
    fn resolve<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyString>,
    ) -> PyResult<(Bound<'py, PyAny>, i64)> {
        let cls = match self.topic_cache.bind(py).get_item(topic)? {
            Some(cls) => cls,
            None => self.resolve_topic.bind(py).call1((topic,))?,
        };
        refuse_other_than_domain_events(py, &cls, topic)?;
        let version = self.class_info(&cls)?.class_version;
        Ok((cls, version))
    }

    fn decode_state<'py>(
        &self,
        py: Python<'py>,
        stored: &StoredEvent,
    ) -> PyResult<Bound<'py, PyDict>> {
        let data = stored.state.bind(py).clone().into_any();
        let data = match &self.cipher {
            Some(cipher) if self.cipher_bound => cipher.bind(py).call_method1(
                intern!(py, "decrypt_at"),
                (
                    data,
                    stored.originator_id.bind(py),
                    stored.originator_version,
                    stored.topic.bind(py),
                ),
            )?,
            _ => through(&self.cipher, intern!(py, "decrypt"), data)?,
        };
        let data = through(&self.compressor, intern!(py, "decompress"), data)?;
        let bytes = data.cast::<PyBytes>()?;
        // Only text the Rust parser refuses goes to the Python transcoder
        // (which defers to Python's json); errors from transcodings stand.
        let decoded = match self.codec.borrow(py).decode_native(py, bytes.as_bytes()) {
            Ok(value) => value,
            Err(BuildError::Build(err)) => return Err(err),
            Err(BuildError::Syntax(_)) => self
                .transcoder
                .bind(py)
                .call_method1(intern!(py, "decode"), (bytes,))?,
        };
        decoded.cast_into::<PyDict>().map_err(|_| {
            DataError::new_err(format!(
                "stored event {} of aggregate {} (topic '{}') does not hold an \
                 object's attributes",
                stored.originator_version,
                stored.originator_id.bind(py),
                stored.topic.bind(py)
            ))
        })
    }
}

/// `eventsourcing_rs.domain.DomainEvent`, looked up once.
static DOMAIN_EVENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Refuses a topic that names anything but a domain event class: whoever
/// can write a row must not be able to make an application construct an
/// arbitrary object (`subprocess:Popen`, say) from its state.
fn refuse_other_than_domain_events(
    py: Python<'_>,
    cls: &Bound<'_, PyAny>,
    topic: &Bound<'_, PyString>,
) -> PyResult<()> {
    let domain_event = DOMAIN_EVENT.get_or_try_init(py, || {
        py.import("eventsourcing_rs.domain")?
            .getattr("DomainEvent")?
            .cast_into::<PyType>()
            .map(Bound::unbind)
            .map_err(PyErr::from)
    })?;
    let is_event = match cls.cast::<PyType>() {
        // By the classes' MROs (PyType_IsSubtype), not issubclass(), which
        // would run ABCMeta's __subclasscheck__ for every event decoded.
        // SAFETY: both are live type objects; nothing is written.
        Ok(cls) => unsafe {
            pyo3::ffi::PyType_IsSubtype(cls.as_type_ptr(), domain_event.bind(py).as_type_ptr()) != 0
        },
        Err(_) => false,
    };
    if is_event {
        return Ok(());
    }
    Err(DataError::new_err(format!(
        "topic '{topic}' names {}, which is not a domain event class: refused",
        cls.repr()?
    )))
}

#[pymethods]
impl EventMapper {
    #[new]
    #[pyo3(signature = (codec, transcoder, compressor, cipher, get_topic, resolve_topic, topic_cache))]
    fn new(
        codec: Py<JsonCodec>,
        transcoder: Py<PyAny>,
        compressor: Option<Py<PyAny>>,
        cipher: Option<Py<PyAny>>,
        get_topic: Py<PyAny>,
        resolve_topic: Py<PyAny>,
        topic_cache: Py<PyDict>,
    ) -> PyResult<Self> {
        let cipher_bound = match &cipher {
            Some(cipher) => Python::attach(|py| -> PyResult<bool> {
                match cipher.bind(py).getattr(intern!(py, "bound_to_position")) {
                    Ok(bound) => bound.is_truthy(),
                    Err(_) => Ok(false),
                }
            })?,
            None => false,
        };
        Ok(EventMapper {
            codec,
            transcoder,
            compressor,
            cipher,
            cipher_bound,
            get_topic,
            resolve_topic,
            classes: Mutex::new(HashMap::default()),
            topic_cache,
        })
    }

    /// Returns the StoredEvent for a domain event.
    #[pyo3(name = "from_domain_event")]
    pub(crate) fn stored_event_for<'py>(
        &self,
        py: Python<'py>,
        domain_event: &Bound<'py, PyAny>,
    ) -> PyResult<StoredEvent> {
        let cls = domain_event.get_type();
        let info = self.class_info(cls.as_any())?;
        let topic = self.topic(&cls, &info)?;
        let dict = domain_event
            .getattr(intern!(py, "__dict__"))?
            .cast_into::<PyDict>()?;
        // Interned names: a key made from a &str would be a new string,
        // hashed on every call.
        let get = |name: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyAny>> {
            dict.get_item(name)?.ok_or_else(|| {
                PyTypeError::new_err(format!("domain event {topic} has no attribute '{name}'"))
            })
        };
        let originator_id = get(intern!(py, "originator_id"))?;
        let originator_version: i64 = get(intern!(py, "originator_version"))?.extract()?;
        let key = uuid_to_u128(&originator_id, "originator_id")?;
        let version_obj;
        let extra = if info.class_version > 1 {
            version_obj = info.class_version.into_pyobject(py)?.into_any();
            Some(("class_version", &version_obj))
        } else {
            None
        };
        let state = self
            .codec
            .borrow(py)
            .encode_state(&dict, &["originator_id", "originator_version"], extra)?
            .into_any();
        let state = through(&self.compressor, intern!(py, "compress"), state)?;
        let state = match &self.cipher {
            Some(cipher) if self.cipher_bound => cipher.bind(py).call_method1(
                intern!(py, "encrypt_at"),
                (state, &originator_id, originator_version, &topic),
            )?,
            _ => through(&self.cipher, intern!(py, "encrypt"), state)?,
        };
        Ok(StoredEvent::from_parts(
            originator_id,
            key,
            originator_version,
            topic,
            state.cast_into::<PyBytes>()?,
        ))
    }

    /// Returns the domain event a StoredEvent records, upcast to the
    /// current version of its class.
    pub(crate) fn to_domain_event<'py>(
        &self,
        py: Python<'py>,
        stored: &Bound<'py, StoredEvent>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = stored.get();
        let context = || {
            format!(
                "while reading stored event {} of aggregate {} (topic '{}')",
                s.originator_version,
                s.originator_id.bind(py),
                s.topic.bind(py)
            )
        };
        let (state, (cls, target_version)) = match self
            .decode_state(py, s)
            .and_then(|d| Ok((d, self.resolve(py, s.topic.bind(py))?)))
        {
            Ok(v) => v,
            Err(err) => {
                add_note(py, &err, context());
                return Err(err);
            }
        };
        state.set_item(intern!(py, "originator_id"), s.originator_id.bind(py))?;
        state.set_item(intern!(py, "originator_version"), s.originator_version)?;
        let mut from_version: i64 = match state.get_item(intern!(py, "class_version"))? {
            Some(v) => {
                let v = v.extract()?;
                state.del_item(intern!(py, "class_version"))?;
                v
            }
            None => 1,
        };
        while from_version < target_version {
            let name = format!("upcast_v{}_v{}", from_version, from_version + 1);
            cls.getattr(name.as_str())?.call1((&state,))?;
            from_version += 1;
        }
        let cls = cls.cast_into::<PyType>()?;
        super::objects::new_with_dict(&cls, &state)
    }
}

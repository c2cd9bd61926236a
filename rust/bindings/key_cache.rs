//! Interned Python strings for the keys of decoded objects. Events of one
//! class repeat the same few keys: an interned key is made and hashed once,
//! and the attribute lookups on the decoded event then match it by identity.

use std::collections::HashMap;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Longer keys are rare and are made afresh each time.
const MAX_KEY_LEN: usize = 64;
/// Bounds the cache when keys are data (say, a dict keyed by ids).
const MAX_KEYS: usize = 4096;

#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<Box<str>, Py<PyString>, foldhash::fast::RandomState>>,
}

impl KeyCache {
    /// The key as a Python string: the cached one, or one newly cached;
    /// None (make a plain string) for a long key or once the cache is
    /// full. Only cached keys are interned: interned strings are immortal
    /// on some Python versions, so interning every key of a dict keyed by
    /// data would keep each one for good.
    pub fn get<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyString>> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        // Held only while the GIL is, and never across a call into Python.
        let mut keys = self.keys.lock();
        if let Some(cached) = keys.get(key) {
            return Some(cached.bind(py).clone());
        }
        if keys.len() >= MAX_KEYS {
            return None;
        }
        let interned = PyString::intern(py, key);
        keys.insert(key.into(), interned.clone().unbind());
        Some(interned)
    }
}

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
    keys: Mutex<HashMap<Box<str>, Py<PyString>>>,
}

impl KeyCache {
    /// The key as a Python string: the cached one when there is one.
    pub fn get<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyString>> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        // Held only while the GIL is, and never across a call into Python.
        let mut keys = self.keys.lock();
        if let Some(cached) = keys.get(key) {
            return Some(cached.bind(py).clone());
        }
        let interned = PyString::intern(py, key);
        if keys.len() < MAX_KEYS {
            keys.insert(key.into(), interned.clone().unbind());
        }
        Some(interned)
    }
}

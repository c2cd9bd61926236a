//! SQLite for Python: the datastore, its recorders (with the method
//! surface of `MemoryRecorder`) and a transaction for raw SQL.
//!
//! Every call takes what it needs out of the Python objects first, does
//! the database work with the GIL released, and builds Python objects only
//! afterwards; no Rust lock is held while Python runs.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use rusqlite::types::Value;

use super::errors::{
    DataError, DatabaseError, IntegrityError, InterfaceError, InternalError, LeaseLost,
    NotSupportedError, OperationalError, ProgrammingError, TrackingRefused,
};
use super::uuids::{u128_to_uuid, uuid_to_u128};
use super::values::{Notification, StoredEvent, Tracking};
use crate::core::memory_store::EventQuery;
use crate::core::segment::SegmentFilter;
use crate::core::sqlite::{
    Datastore, ErrorKind, EventRecord, EventRows, Lease, LeaseFence, RecorderKind, Role,
    SqliteRecorder as Recorder, StoreError,
};

/// The exception of the persistence hierarchy for a store error.
pub fn store_error(err: StoreError) -> PyErr {
    let message = err.message;
    let error = match err.kind {
        ErrorKind::Interface => InterfaceError::new_err(message),
        ErrorKind::Database => DatabaseError::new_err(message),
        ErrorKind::Data => DataError::new_err(message),
        ErrorKind::Operational => OperationalError::new_err(message),
        ErrorKind::Integrity => IntegrityError::new_err(message),
        ErrorKind::TrackingRefused => TrackingRefused::new_err(message),
        ErrorKind::LeaseLost => LeaseLost::new_err(message),
        ErrorKind::Internal => InternalError::new_err(message),
        ErrorKind::Programming => ProgrammingError::new_err(message),
        ErrorKind::NotSupported => NotSupportedError::new_err(message),
    };
    if let Some(id) = err.notification_id {
        // Read by a follower, to say which notification it stopped at.
        Python::attach(|py| {
            let _ = error.value(py).setattr("notification_id", id);
        });
    }
    error
}

#[pyclass(frozen, name = "SQLiteDatastore", module = "eventsourcing_rs._core")]
pub struct SqliteDatastore {
    store: Datastore,
}

#[pymethods]
impl SqliteDatastore {
    /// `db_name` is a path, `:memory:` or a `file:` URI; `None` is
    /// accepted here and refused when a connection is first needed, as a
    /// connection failure.
    #[new]
    #[pyo3(signature = (db_name, lock_timeout=None))]
    fn new(db_name: &Bound<'_, PyAny>, lock_timeout: Option<f64>) -> PyResult<Self> {
        let name = if db_name.is_none() {
            None
        } else {
            let path = db_name
                .py()
                .import(intern!(db_name.py(), "os"))?
                .call_method1(intern!(db_name.py(), "fspath"), (db_name,))
                .and_then(|p| p.extract::<String>())
                .map_err(|_| {
                    InterfaceError::new_err(format!(
                        "an SQLite database name must be a str or a path, got {}",
                        db_name.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })?;
            Some(path)
        };
        Ok(SqliteDatastore {
            store: Datastore::new(name, lock_timeout),
        })
    }

    #[getter]
    fn db_name(&self) -> &str {
        self.store.db_name()
    }

    #[getter]
    fn is_memory(&self) -> bool {
        self.store.is_memory()
    }

    /// The seconds SQLite waits for a lock, after defaults are applied.
    #[getter]
    fn effective_lock_timeout(&self) -> f64 {
        self.store.lock_timeout().as_secs_f64()
    }

    /// (transactions committed by group commit, writes they held): their
    /// ratio is the writes per commit.
    #[getter]
    fn group_commit_counts(&self) -> (u64, u64) {
        self.store.group_commit_counts()
    }

    #[getter]
    fn is_journal_mode_wal(&self) -> bool {
        self.store.is_journal_mode_wal()
    }

    #[getter]
    fn journal_mode_was_changed_to_wal(&self) -> bool {
        self.store.journal_mode_was_changed_to_wal()
    }

    /// Opens a connection now (if none is open), so connection errors
    /// surface here.
    fn connect(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.store.lease(Role::Read).map(drop))
            .map_err(store_error)
    }

    /// A transaction for raw SQL: `BEGIN IMMEDIATE` when it will commit,
    /// a plain `BEGIN` (rolled back at the end) when it will not.
    #[pyo3(signature = (commit=false))]
    fn transaction(&self, py: Python<'_>, commit: bool) -> PyResult<SqliteTransaction> {
        self.connect(py)?;
        Ok(SqliteTransaction {
            store: self.store.clone(),
            commit,
            state: Mutex::new(TxState::default()),
        })
    }

    fn close_all_connections(&self, py: Python<'_>) {
        py.detach(|| self.store.close_all())
    }
}

#[derive(Default)]
struct TxState {
    lease: Option<Lease>,
    /// The lease is out with a thread running a statement.
    busy: bool,
    rows: VecDeque<Vec<Value>>,
    rowcount: i64,
    lastrowid: Option<i64>,
}

#[pyclass(frozen, name = "SQLiteTransaction", module = "eventsourcing_rs._core")]
pub struct SqliteTransaction {
    store: Datastore,
    commit: bool,
    state: Mutex<TxState>,
}

impl SqliteTransaction {
    /// The error for a transaction used in a child forked while it was
    /// open (the parent's to commit or roll back, not the child's).
    fn refuse_inherited(&self, lease: Lease) -> PyErr {
        drop(lease);
        self.store.adopt_after_fork();
        ProgrammingError::new_err(
            "this transaction was opened before the process forked: it belongs to the \
             parent process, and is neither used nor committed in the child",
        )
    }

    /// Takes the connection out of the transaction for one statement.
    fn take_lease(&self) -> PyResult<Lease> {
        let mut state = self.state.lock();
        if state.busy {
            return Err(ProgrammingError::new_err(
                "this transaction is running a statement in another thread",
            ));
        }
        match state.lease.take() {
            Some(lease) if !lease.is_of_this_process() => {
                drop(state);
                Err(self.refuse_inherited(lease))
            }
            Some(lease) => {
                state.busy = true;
                Ok(lease)
            }
            None => Err(ProgrammingError::new_err(
                "the transaction is not open: use it in a 'with' statement",
            )),
        }
    }

    fn put_back(&self, lease: Lease, rows: Option<VecDeque<Vec<Value>>>, changes: i64, rowid: i64) {
        let mut state = self.state.lock();
        state.lease = Some(lease);
        state.busy = false;
        if let Some(rows) = rows {
            state.rows = rows;
            state.rowcount = changes;
            state.lastrowid = Some(rowid);
        }
    }

    fn run(&self, py: Python<'_>, sql: &str, batches: Vec<Vec<Value>>) -> PyResult<()> {
        let lease = self.take_lease()?;
        let (lease, outcome) = py.detach(move || {
            let outcome = run_statement(&lease, sql, batches);
            (lease, outcome)
        });
        match outcome {
            Ok((rows, changes)) => {
                let rowid = lease.last_insert_rowid();
                self.put_back(lease, Some(rows), changes, rowid);
                Ok(())
            }
            Err(err) => {
                let err = StoreError::from_sqlite(
                    &format!(
                        "cannot execute statement on SQLite database '{}'",
                        lease.db_name()
                    ),
                    &err,
                );
                self.put_back(lease, None, 0, 0);
                Err(store_error(err))
            }
        }
    }
}

fn run_statement(
    conn: &rusqlite::Connection,
    sql: &str,
    batches: Vec<Vec<Value>>,
) -> rusqlite::Result<(VecDeque<Vec<Value>>, i64)> {
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = VecDeque::new();
    let mut changes = 0i64;
    for params in batches {
        if columns == 0 {
            changes += stmt.execute(rusqlite::params_from_iter(params))? as i64;
            continue;
        }
        let mut cursor = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = cursor.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(row.get::<_, Value>(i)?);
            }
            rows.push_back(values);
        }
        changes = -1;
    }
    Ok((rows, changes))
}

fn to_sql_value(obj: &Bound<'_, PyAny>, position: usize) -> PyResult<Value> {
    if obj.is_none() {
        Ok(Value::Null)
    } else if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyInt>() {
        Ok(Value::Integer(obj.extract::<i64>()?))
    } else if obj.is_instance_of::<PyFloat>() {
        Ok(Value::Real(obj.extract::<f64>()?))
    } else if let Ok(s) = obj.cast::<PyString>() {
        Ok(Value::Text(s.to_str()?.to_owned()))
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Ok(Value::Blob(b.as_bytes().to_vec()))
    } else if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        Ok(Value::Blob(
            obj.call_method0(intern!(obj.py(), "tobytes"))
                .or_else(|_| obj.py().get_type::<PyBytes>().call1((obj,)))?
                .extract::<Vec<u8>>()?,
        ))
    } else {
        Err(ProgrammingError::new_err(format!(
            "parameter {position} of the statement has a type SQLite cannot store: {}",
            obj.get_type().name()?
        )))
    }
}

fn to_params(parameters: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Value>> {
    let Some(parameters) = parameters else {
        return Ok(Vec::new());
    };
    if parameters.is_instance_of::<PyString>() || parameters.is_instance_of::<PyBytes>() {
        return Err(ProgrammingError::new_err(
            "statement parameters must be a sequence of values, not a str or bytes",
        ));
    }
    parameters
        .try_iter()?
        .enumerate()
        .map(|(i, item)| to_sql_value(&item?, i + 1))
        .collect()
}

fn to_python(py: Python<'_>, value: Value) -> PyResult<Bound<'_, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => f.into_pyobject(py)?.into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

#[pymethods]
impl SqliteTransaction {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        let this = slf.get();
        {
            let state = this.state.lock();
            if state.lease.is_some() || state.busy {
                return Err(ProgrammingError::new_err("the transaction is already open"));
            }
        }
        let (role, begin) = if this.commit {
            (Role::Write, "BEGIN IMMEDIATE")
        } else {
            (Role::Read, "BEGIN")
        };
        let store = this.store.clone();
        let lease = py
            .detach(move || {
                let lease = store.lease(role)?;
                lease.execute_batch(begin).map_err(|e| {
                    StoreError::from_sqlite(
                        &format!(
                            "cannot begin a transaction on SQLite database '{}'",
                            lease.db_name()
                        ),
                        &e,
                    )
                })?;
                Ok::<_, StoreError>(lease)
            })
            .map_err(store_error)?;
        *this.state.lock() = TxState {
            lease: Some(lease),
            ..TxState::default()
        };
        Ok(slf)
    }

    /// Commits if asked to and nothing was raised; otherwise rolls back.
    /// Exceptions raised in the block propagate.
    #[pyo3(signature = (exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let commit = self.commit && exc_type.is_none_or(|t| t.is_none());
        let lease = {
            let mut state = self.state.lock();
            state.rows.clear();
            state.lease.take()
        };
        let Some(lease) = lease else {
            return Ok(false);
        };
        if !lease.is_of_this_process() {
            // Never committed (nor rolled back) by the child: the parent
            // commits its own transaction.
            return Err(self.refuse_inherited(lease));
        }
        py.detach(move || {
            if commit {
                if let Err(err) = lease.execute_batch("COMMIT") {
                    let _ = lease.execute_batch("ROLLBACK");
                    return Err(StoreError::from_sqlite(
                        &format!("cannot commit to SQLite database '{}'", lease.db_name()),
                        &err,
                    ));
                }
            } else if !lease.is_autocommit() {
                let _ = lease.execute_batch("ROLLBACK");
            }
            Ok(())
        })
        .map_err(store_error)?;
        Ok(false)
    }

    /// Runs one statement; its rows are read with the fetch methods.
    #[pyo3(signature = (sql, parameters=None))]
    fn execute<'py>(
        slf: Bound<'py, Self>,
        sql: &str,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let params = to_params(parameters)?;
        slf.get().run(slf.py(), sql, vec![params])?;
        Ok(slf)
    }

    /// Runs one statement once for each set of parameters.
    fn executemany<'py>(
        slf: Bound<'py, Self>,
        sql: &str,
        seq_of_parameters: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let batches = seq_of_parameters
            .try_iter()?
            .map(|p| to_params(Some(&p?)))
            .collect::<PyResult<Vec<_>>>()?;
        slf.get().run(slf.py(), sql, batches)?;
        Ok(slf)
    }

    fn fetchone<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let row = self.state.lock().rows.pop_front();
        row.map(|values| row_tuple(py, values)).transpose()
    }

    #[pyo3(signature = (size=1))]
    fn fetchmany<'py>(&self, py: Python<'py>, size: usize) -> PyResult<Bound<'py, PyList>> {
        let rows: Vec<Vec<Value>> = {
            let mut state = self.state.lock();
            let n = size.min(state.rows.len());
            state.rows.drain(..n).collect()
        };
        rows_list(py, rows)
    }

    fn fetchall<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows: Vec<Vec<Value>> = self.state.lock().rows.drain(..).collect();
        rows_list(py, rows)
    }

    /// Rows changed by the last statement, or -1 after a query.
    #[getter]
    fn rowcount(&self) -> i64 {
        self.state.lock().rowcount
    }

    #[getter]
    fn lastrowid(&self) -> Option<i64> {
        self.state.lock().lastrowid
    }

    /// Discards unread rows (the transaction ends with the `with` block).
    fn close(&self) {
        self.state.lock().rows.clear();
    }
}

fn row_tuple(py: Python<'_>, values: Vec<Value>) -> PyResult<Bound<'_, PyTuple>> {
    let items = values
        .into_iter()
        .map(|v| to_python(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

fn rows_list(py: Python<'_>, rows: Vec<Vec<Value>>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for values in rows {
        list.append(row_tuple(py, values)?)?;
    }
    Ok(list)
}

/// An aggregate, application or process recorder on one table.
#[pyclass(frozen, name = "SQLiteRecorder", module = "eventsourcing_rs._core")]
pub struct SqliteRecorder {
    inner: Recorder,
}

impl SqliteRecorder {
    /// Reads the events from notification id `start` and hands each, with
    /// its id, to `each`.
    fn each_notification_row<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
        each: impl FnMut(i64, StoredEvent) -> PyResult<()>,
    ) -> PyResult<Option<PyErr>> {
        let rows = py
            .detach(|| self.inner.select_notification_rows(start, limit))
            .map_err(store_error)?;
        each_row(py, rows, each)
    }
}

/// Each of the rows as a stored event object, with its notification id;
/// the error of the row they stopped at, if any.
fn each_row<'py>(
    py: Python<'py>,
    mut rows: EventRows,
    mut each: impl FnMut(i64, StoredEvent) -> PyResult<()>,
) -> PyResult<Option<PyErr>> {
    {
        let stopped_by = rows.stopped_by.take().map(store_error);
        let topics = topic_strings(py, &rows);
        // An aggregate's events are usually recorded, so read, together:
        // consecutive rows of one originator share its UUID object.
        let mut last: Option<(u128, Bound<'py, PyAny>)> = None;
        for row in &rows.rows {
            let key = row.originator_id;
            let uuid = match &last {
                Some((k, u)) if *k == key => u.clone(),
                _ => {
                    let u = u128_to_uuid(py, key)?;
                    last = Some((key, u.clone()));
                    u
                }
            };
            let event = StoredEvent::from_parts(
                uuid,
                key,
                row.originator_version,
                topics[rows.topic_index(row)].clone(),
                PyBytes::new(py, rows.state(row)),
            );
            each(row.id, event)?;
        }
        Ok(stopped_by)
    }
}

impl SqliteRecorder {
    /// The events from notification id `start`, with their ids, as stored
    /// event objects (no Notification made for each).
    pub(crate) fn notification_rows<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
    ) -> PyResult<NotificationRows<'py>> {
        let mut rows = Vec::new();
        let stopped_by = self.each_notification_row(py, start, limit, |id, event| {
            rows.push((id, Bound::new(py, event)?));
            Ok(())
        })?;
        Ok((rows, stopped_by))
    }
}

/// A list of notifications; with the error of a row it stopped at, a
/// page that carries it (see `persistence.NotificationPage`).
fn notification_page<'py>(
    py: Python<'py>,
    items: Vec<Py<Notification>>,
    stopped_by: Option<PyErr>,
) -> PyResult<Bound<'py, PyList>> {
    let Some(error) = stopped_by else {
        return PyList::new(py, items);
    };
    let page = py
        .import(intern!(py, "eventsourcing_rs.persistence"))?
        .getattr(intern!(py, "NotificationPage"))?
        .call1((PyList::new(py, items)?,))?;
    page.setattr(intern!(py, "stopped_by"), error.into_value(py))?;
    Ok(page.cast_into::<PyList>()?)
}

/// A page of notification rows, and the error of the row it stopped at
/// when the rows before that one were good.
pub type NotificationRows<'py> = (Vec<(i64, Bound<'py, StoredEvent>)>, Option<PyErr>);

/// One Python string per distinct topic of the rows.
fn topic_strings<'py>(py: Python<'py>, rows: &EventRows) -> Vec<Bound<'py, PyString>> {
    rows.topics.iter().map(|t| PyString::new(py, t)).collect()
}

#[pymethods]
impl SqliteRecorder {
    /// `kind` is "aggregate", "application" or "process".
    #[new]
    #[pyo3(signature = (datastore, events_table_name="stored_events", kind="application"))]
    fn new(
        datastore: PyRef<'_, SqliteDatastore>,
        events_table_name: &str,
        kind: &str,
    ) -> PyResult<Self> {
        let kind = RecorderKind::parse(kind).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown recorder kind {kind:?}: expected 'aggregate', 'application' or 'process'"
            ))
        })?;
        Ok(SqliteRecorder {
            inner: Recorder::new(datastore.store.clone(), events_table_name, kind),
        })
    }

    #[getter]
    fn events_table_name(&self) -> &str {
        self.inner.table()
    }

    fn create_table_statements(&self) -> Vec<String> {
        self.inner.create_table_statements()
    }

    /// From now on, each tracking write also checks, in its transaction,
    /// that row `name` of the lease table `table` is still at `epoch`
    /// (refusing with LeaseLost if not); with no table, no lease is checked.
    #[pyo3(signature = (table=None, name="", epoch=0))]
    fn set_fence(&self, table: Option<&str>, name: &str, epoch: i64) {
        self.inner.set_fence(table.map(|table| LeaseFence {
            table: table.to_string(),
            name: name.to_string(),
            epoch,
        }));
    }

    /// The lease checked by tracking writes, as (table, name, epoch).
    #[getter]
    fn fence(&self) -> Option<(String, String, i64)> {
        self.inner.fence().map(|f| (f.table, f.name, f.epoch))
    }

    /// Creates the tables (with the given statements, or the default ones)
    /// and checks their shape, in one transaction.
    #[pyo3(signature = (statements=None))]
    fn create_table(&self, py: Python<'_>, statements: Option<Vec<String>>) -> PyResult<()> {
        py.detach(|| self.inner.create_table(statements.as_deref()))
            .map_err(store_error)
    }

    /// Inserts the events (with the tracking record, for a process
    /// recorder) all or nothing; returns their notification ids (none
    /// for an aggregate recorder).
    #[pyo3(signature = (stored_events, tracking=None))]
    pub(crate) fn insert_events(
        &self,
        py: Python<'_>,
        stored_events: &Bound<'_, PyAny>,
        tracking: Option<PyRef<'_, Tracking>>,
    ) -> PyResult<Vec<i64>> {
        let mut batch = Vec::new();
        for item in stored_events.try_iter()? {
            let item = item?;
            let stored = item.cast::<StoredEvent>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "insert_events() takes StoredEvent objects, got {}",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let s = stored.get();
            batch.push(EventRecord {
                originator_id: s.require_key(py)?,
                originator_version: s.originator_version,
                topic: s.topic.bind(py).to_str()?.to_owned(),
                state: s.state.bind(py).as_bytes().to_vec(),
            });
        }
        // Frozen: readable without the GIL.
        let tracking: Option<Py<Tracking>> = tracking.map(|t| t.into());
        py.detach(|| {
            let record = tracking.as_ref().map(|t| t.get().record());
            self.inner.insert_events(&batch, record)
        })
        .map_err(store_error)
    }

    #[pyo3(signature = (originator_id, gt=None, lte=None, desc=false, limit=None))]
    fn select_events<'py>(
        &self,
        py: Python<'py>,
        originator_id: &Bound<'py, PyAny>,
        gt: Option<i64>,
        lte: Option<i64>,
        desc: bool,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = uuid_to_u128(originator_id, "originator_id")?;
        let query = EventQuery {
            gt,
            lte,
            desc,
            limit,
        };
        let rows = py
            .detach(|| self.inner.select_event_rows(key, query))
            .map_err(store_error)?;
        let topics = topic_strings(py, &rows);
        let items = rows
            .rows
            .iter()
            .map(|row| {
                let event = StoredEvent::from_parts(
                    originator_id.clone(),
                    key,
                    row.originator_version,
                    topics[rows.topic_index(row)].clone(),
                    PyBytes::new(py, rows.state(row)),
                );
                Py::new(py, event)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    pub(crate) fn select_notifications<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut items = Vec::new();
        let stopped_by = self.each_notification_row(py, start, limit, |id, event| {
            items.push(Notification::create(py, id, event)?);
            Ok(())
        })?;
        notification_page(py, items, stopped_by)
    }

    /// The notifications of segment `index` of `count` (see
    /// `eventsourcing_rs.segments`) among the `scan` from `start`, and the
    /// id of the last one scanned.
    fn select_segment<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        scan: usize,
        index: u32,
        count: u32,
    ) -> PyResult<(Bound<'py, PyList>, i64)> {
        let segment = SegmentFilter { index, count };
        let (rows, upto) = py
            .detach(|| self.inner.select_segment_rows(start, scan, segment))
            .map_err(store_error)?;
        let mut items = Vec::new();
        let stopped_by = each_row(py, rows, |id, event| {
            items.push(Notification::create(py, id, event)?);
            Ok(())
        })?;
        Ok((notification_page(py, items, stopped_by)?, upto))
    }

    fn max_notification_id(&self, py: Python<'_>) -> PyResult<i64> {
        py.detach(|| self.inner.max_notification_id())
            .map_err(store_error)
    }

    pub(crate) fn max_tracking_id(&self, py: Python<'_>, application_name: &str) -> PyResult<i64> {
        py.detach(|| self.inner.max_tracking_id(application_name))
            .map_err(store_error)
    }
}

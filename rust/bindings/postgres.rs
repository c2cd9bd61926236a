//! PostgreSQL for Python: a pool of connections that runs the statements
//! the Python recorders make (the tables and SQL stay theirs, as 9.1's),
//! with the GIL released for all network and database work. Python builds
//! each statement's SQL once and its values per call; everything else, a
//! save's round trip included, is done here.

use std::time::Duration;

use parking_lot::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyList, PyString, PyTuple};

use super::sqlite_recorder::store_error;
use super::uuids::{u128_to_uuid, uuid_class, uuid_to_u128};
use super::values::{Notification, StoredEvent};
use crate::core::postgres::listener::Listener;
use crate::core::postgres::{
    AnyInt, Connections, PgFailure, PgSettings, PgValue, RawUuid, SslMode, Tls, TlsFiles,
    WriteRequest,
};
use crate::core::sqlite::StoreError;

/// The persistence exception for a failure, with what the server said as
/// attributes (`sqlstate`, `table_name`, `detail`) for the recorders'
/// messages.
fn pg_error(failure: PgFailure) -> PyErr {
    let error = store_error(StoreError::new(failure.kind, failure.message));
    Python::attach(|py| {
        let value = error.value(py);
        let _ = value.setattr("sqlstate", failure.sqlstate);
        let _ = value.setattr("table_name", failure.table);
        let _ = value.setattr("detail", failure.detail);
    });
    error
}

fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<PgValue> {
    if obj.is_none() {
        return Ok(PgValue::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("a bool is not a statement value here"));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(PgValue::Int(obj.extract()?));
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(PgValue::Text(text.to_str()?.to_owned()));
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(PgValue::Bytes(bytes.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<PyByteArray>() {
        return Ok(PgValue::Bytes(obj.extract::<Vec<u8>>()?));
    }
    if obj.is_instance(uuid_class(obj.py())?)? {
        return Ok(PgValue::Uuid(uuid_to_u128(obj, "statement value")?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items = obj
            .try_iter()?
            .map(|item| to_value(&item?))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PgValue::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "a {} is not a statement value PostgreSQL is sent here",
        obj.get_type().name()?
    )))
}

fn to_values(params: &Bound<'_, PyAny>) -> PyResult<Vec<PgValue>> {
    params.try_iter()?.map(|p| to_value(&p?)).collect()
}

fn seconds(value: Option<f64>, name: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!("{name} must be a number of seconds, got {s}"))
        }),
    }
}

/// A connection that waits for notifications on the channels it LISTENs
/// on (see `PostgresConnections.listen`).
#[pyclass(frozen, module = "eventsourcing_rs._core")]
pub struct PostgresListener {
    inner: Mutex<Option<Listener>>,
}

#[pymethods]
impl PostgresListener {
    /// Waits up to `timeout` seconds (the GIL released) for a
    /// notification: the (channel, payload) of each heard, none if the
    /// time ran out. A lost connection raises InterfaceError.
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<(String, String)>> {
        let timeout = seconds(Some(timeout.max(0.0)), "timeout")?.unwrap_or_default();
        py.detach(|| {
            let mut guard = self.inner.lock();
            match guard.as_mut() {
                Some(listener) => listener.wait(timeout),
                None => Err(PgFailure::new(
                    crate::core::sqlite::ErrorKind::Interface,
                    "the listener is closed",
                )),
            }
        })
        .map_err(pg_error)
    }

    /// Closes the connection.
    fn close(&self) {
        self.inner.lock().take();
    }
}

/// One event row, as read: (notification id, originator id, version,
/// topic, state).
type Row = (i64, u128, i64, String, Vec<u8>);

fn read_rows(rows: &[tokio_postgres::Row], numbered: bool) -> Result<Vec<Row>, PgFailure> {
    let bad = |e: tokio_postgres::Error| {
        PgFailure::new(
            crate::core::sqlite::ErrorKind::Data,
            format!("a row of unexpected shape: {e}"),
        )
    };
    let first = usize::from(numbered);
    rows.iter()
        .map(|row| {
            let id = if numbered {
                row.try_get::<_, AnyInt>(0).map_err(bad)?.0
            } else {
                0
            };
            Ok((
                id,
                row.try_get::<_, RawUuid>(first).map_err(bad)?.0,
                row.try_get::<_, AnyInt>(first + 1).map_err(bad)?.0,
                row.try_get::<_, Option<String>>(first + 2)
                    .map_err(bad)?
                    .unwrap_or_default(),
                row.try_get::<_, Option<Vec<u8>>>(first + 3)
                    .map_err(bad)?
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

fn stored_event<'py>(py: Python<'py>, row: &Row) -> PyResult<StoredEvent> {
    Ok(StoredEvent::from_parts(
        u128_to_uuid(py, row.1)?,
        row.1,
        row.2,
        PyString::new(py, &row.3),
        PyBytes::new(py, &row.4),
    ))
}

#[pyclass(
    frozen,
    name = "PostgresConnections",
    module = "eventsourcing_rs._core"
)]
pub struct PostgresConnections {
    inner: Connections,
}

impl PostgresConnections {
    /// The value in the first column of the first row, if any and not
    /// NULL (the query run with the GIL released).
    fn first_value<T>(
        &self,
        py: Python<'_>,
        statement: &str,
        params: &Bound<'_, PyAny>,
        context: &str,
    ) -> PyResult<Option<T>>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a> + Send,
    {
        let values = to_values(params)?;
        py.detach(|| {
            self.inner.query(statement, &values, context, |rows| {
                Ok(rows
                    .first()
                    .and_then(|row| row.try_get::<_, Option<T>>(0).ok().flatten()))
            })
        })
        .map_err(pg_error)
    }

    /// The rows of a query of events (after a notification id column
    /// when `numbered`), read with the GIL released.
    fn event_rows(
        &self,
        py: Python<'_>,
        statement: &str,
        params: &Bound<'_, PyAny>,
        context: &str,
        numbered: bool,
    ) -> PyResult<Vec<Row>> {
        let values = to_values(params)?;
        py.detach(|| {
            self.inner.query(statement, &values, context, |rows| {
                read_rows(rows, numbered)
            })
        })
        .map_err(pg_error)
    }
}

#[pymethods]
impl PostgresConnections {
    #[new]
    #[pyo3(signature = (
        dbname, host, port, user, password, connect_timeout=5.0, conn_max_age=None,
        pre_ping=false, idle_in_transaction_session_timeout=0.0, sslmode="prefer",
        sslrootcert=None, sslcert=None, sslkey=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dbname: String,
        host: String,
        port: &Bound<'_, PyAny>,
        user: String,
        password: String,
        connect_timeout: f64,
        conn_max_age: Option<f64>,
        pre_ping: bool,
        idle_in_transaction_session_timeout: f64,
        sslmode: &str,
        sslrootcert: Option<String>,
        sslcert: Option<String>,
        sslkey: Option<String>,
    ) -> PyResult<Self> {
        let mode = SslMode::parse(sslmode).ok_or_else(|| {
            PyValueError::new_err(format!(
                "sslmode {sslmode:?} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ))
        })?;
        let files = TlsFiles {
            root_cert: sslrootcert,
            client_cert: sslcert,
            client_key: sslkey,
        };
        let tls = Tls::new(mode, &files).map_err(PyValueError::new_err)?;
        // A port that is no port fails at connect, as an InterfaceError
        // (as psycopg's would), not here.
        let port: u16 = port.str()?.to_str()?.trim().parse().unwrap_or(0);
        let idle = seconds(
            Some(idle_in_transaction_session_timeout.max(0.0)),
            "idle_in_transaction_session_timeout",
        )?
        .unwrap_or_default();
        Ok(PostgresConnections {
            inner: Connections::new(PgSettings {
                host,
                port,
                dbname,
                user,
                password,
                connect_timeout: seconds(Some(connect_timeout), "connect_timeout")?
                    .unwrap_or_default(),
                conn_max_age: seconds(conn_max_age, "conn_max_age")?,
                pre_ping,
                idle_in_transaction_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                tls,
            }),
        })
    }

    /// `before` (BEGIN, settings, locks) and `statement` with `params`,
    /// then COMMIT (or ROLLBACK, when `expected_rows` is given and the
    /// statement returned another number of rows); returns the statement's
    /// row count and the integers in the first column of its rows.
    #[pyo3(signature = (before, statement, params, context, expected_rows=None))]
    fn write(
        &self,
        py: Python<'_>,
        before: &str,
        statement: &str,
        params: &Bound<'_, PyAny>,
        context: &str,
        expected_rows: Option<u64>,
    ) -> PyResult<(u64, Vec<i64>)> {
        let values = to_values(params)?;
        // Committed together with other threads' writes that take the same
        // lock meanwhile (group commit), each with its own outcome.
        let written = py
            .detach(|| {
                self.inner.write_grouped(WriteRequest {
                    before,
                    statement,
                    params: &values,
                    expected_rows,
                    context,
                })
            })
            .map_err(pg_error)?;
        Ok((written.count, written.ids))
    }

    /// (transactions committed by group commit, writes they held).
    #[getter]
    fn group_commit_counts(&self) -> (u64, u64) {
        self.inner.group_commit_counts()
    }

    /// Stored events from a query of (originator_id, originator_version,
    /// topic, state).
    fn select_events<'py>(
        &self,
        py: Python<'py>,
        statement: &str,
        params: &Bound<'py, PyAny>,
        context: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows = self.event_rows(py, statement, params, context, false)?;
        let events = rows
            .iter()
            .map(|row| Py::new(py, stored_event(py, row)?))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, events)
    }

    /// Notifications from a query of (notification_id, originator_id,
    /// originator_version, topic, state).
    fn select_notifications<'py>(
        &self,
        py: Python<'py>,
        statement: &str,
        params: &Bound<'py, PyAny>,
        context: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows = self.event_rows(py, statement, params, context, true)?;
        let notifications = rows
            .iter()
            .map(|row| Notification::create(py, row.0, stored_event(py, row)?))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, notifications)
    }

    /// The integer in the first column of the first row (0 for none or
    /// NULL): a MAX(...).
    fn query_int(
        &self,
        py: Python<'_>,
        statement: &str,
        params: &Bound<'_, PyAny>,
        context: &str,
    ) -> PyResult<i64> {
        let first: Option<AnyInt> = self.first_value(py, statement, params, context)?;
        Ok(first.map_or(0, |v| v.0))
    }

    /// The text in the first column of the first row (None for none or
    /// NULL).
    fn query_text(
        &self,
        py: Python<'_>,
        statement: &str,
        params: &Bound<'_, PyAny>,
        context: &str,
    ) -> PyResult<Option<String>> {
        self.first_value(py, statement, params, context)
    }

    /// Runs statements as one simple query, outside a transaction.
    fn execute_batch(&self, py: Python<'_>, sql: &str, context: &str) -> PyResult<()> {
        py.detach(|| self.inner.execute_batch(sql, context))
            .map_err(pg_error)
    }

    /// A connection of its own that LISTENs on `channels`.
    fn listen(&self, py: Python<'_>, channels: Vec<String>) -> PyResult<PostgresListener> {
        let settings = self.inner.settings().clone();
        let listener = py
            .detach(|| Listener::connect(&settings, &channels))
            .map_err(pg_error)?;
        Ok(PostgresListener {
            inner: Mutex::new(Some(listener)),
        })
    }

    /// Closes the idle connections (each call opens or reuses one).
    fn close_all(&self, py: Python<'_>) {
        py.detach(|| self.inner.close_all())
    }

    fn __repr__(&self) -> String {
        format!("PostgresConnections({})", self.inner.settings().describe())
    }
}

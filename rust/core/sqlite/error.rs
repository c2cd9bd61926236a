//! Errors of the SQLite store, classified as PEP 249 drivers classify them.
//!
//! The binding layer turns each [`ErrorKind`] into the matching exception of
//! `eventsourcing_rs.persistence`. The classification follows Python's own
//! `sqlite3` module, so a failure raises the same class as it did when the
//! reference library wrapped that module.

use std::fmt;

use rusqlite::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Interface,
    Database,
    Data,
    Operational,
    Integrity,
    /// An integrity error of a tracking record (see `core::tracking`).
    TrackingRefused,
    /// The worker's lease of the follower was taken over (its epoch moved).
    LeaseLost,
    Internal,
    Programming,
    NotSupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
    /// The notification whose row could not be read, where one could not.
    pub notification_id: Option<i64>,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            notification_id: None,
        }
    }

    /// Says which notification's row the error is about.
    pub fn at_notification(mut self, id: i64) -> Self {
        self.notification_id = Some(id);
        self
    }

    /// Classifies `err` and puts `context` (what was being done, to which
    /// table of which database) in front of SQLite's own words.
    pub fn from_sqlite(context: &str, err: &rusqlite::Error) -> Self {
        StoreError::new(classify(err), format!("{context}: {}", describe(err)))
    }

    /// True when SQLite gave up waiting for another connection's lock.
    pub fn is_lock_timeout(err: &rusqlite::Error) -> bool {
        matches!(
            err.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

fn describe(err: &rusqlite::Error) -> String {
    match err {
        // SQLite's message ("no such table: x") says more than the code's
        // generic description, which Display would otherwise repeat.
        rusqlite::Error::SqliteFailure(e, Some(msg)) => {
            if msg.is_empty() {
                e.to_string()
            } else {
                msg.clone()
            }
        }
        other => other.to_string(),
    }
}

fn classify(err: &rusqlite::Error) -> ErrorKind {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(e, _) => classify_code(e.code),
        E::SqlInputError { error, .. } => classify_code(error.code),
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::ToSqlConversionFailure(..) => ErrorKind::Data,
        E::NulError(_) | E::InvalidPath(_) | E::SqliteSingleThreadedMode => ErrorKind::Interface,
        E::InvalidParameterName(_)
        | E::InvalidParameterCount(..)
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_)
        | E::ExecuteReturnedResults
        | E::QueryReturnedNoRows
        | E::QueryReturnedMoreThanOneRow
        | E::StatementChangedRows(_)
        | E::MultipleStatement
        | E::InvalidQuery => ErrorKind::Programming,
        _ => ErrorKind::Database,
    }
}

fn classify_code(code: ErrorCode) -> ErrorKind {
    use ErrorCode as C;
    match code {
        C::ConstraintViolation | C::TypeMismatch => ErrorKind::Integrity,
        C::TooBig => ErrorKind::Data,
        C::InternalMalfunction | C::NotFound => ErrorKind::Internal,
        C::ApiMisuse | C::ParameterOutOfRange => ErrorKind::Interface,
        C::DatabaseCorrupt | C::NotADatabase => ErrorKind::Database,
        C::NoLargeFileSupport => ErrorKind::NotSupported,
        C::Unknown
        | C::PermissionDenied
        | C::OperationAborted
        | C::DatabaseBusy
        | C::DatabaseLocked
        | C::OutOfMemory
        | C::ReadOnly
        | C::OperationInterrupted
        | C::SystemIoFailure
        | C::DiskFull
        | C::CannotOpen
        | C::FileLockingProtocolFailed
        | C::SchemaChanged
        | C::AuthorizationForStatementDenied => ErrorKind::Operational,
        _ => ErrorKind::Database,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn sqlite_failures_are_classified_like_python_sqlite3() {
        let conn = Connection::open_in_memory().unwrap();
        let err = conn
            .execute("INSERT INTO missing VALUES (1)", [])
            .unwrap_err();
        let e = StoreError::from_sqlite("writing to 'missing'", &err);
        assert_eq!(e.kind, ErrorKind::Operational);
        assert_eq!(e.message, "writing to 'missing': no such table: missing");

        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY)")
            .unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let err = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert_eq!(
            StoreError::from_sqlite("x", &err).kind,
            ErrorKind::Integrity
        );

        let err = conn.execute_batch("BLAH").unwrap_err();
        assert_eq!(
            StoreError::from_sqlite("x", &err).kind,
            ErrorKind::Operational
        );

        let err = conn
            .query_row("SELECT 'text'", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert_eq!(StoreError::from_sqlite("x", &err).kind, ErrorKind::Data);
    }
}

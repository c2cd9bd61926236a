//! PostgreSQL failures in the PEP 249 classes, with what the server said
//! (SQLSTATE, table, detail) kept for the Python layer's messages.

use crate::core::sqlite::ErrorKind;

#[derive(Debug, Clone)]
pub struct PgFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub sqlstate: Option<String>,
    pub table: Option<String>,
    pub detail: Option<String>,
    /// The session is gone (closed, terminated by an administrator or a
    /// server shutting down): another connection may succeed.
    pub lost: bool,
}

impl PgFailure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PgFailure {
            kind,
            message: message.into(),
            sqlstate: None,
            table: None,
            detail: None,
            lost: false,
        }
    }

    /// A prepared statement the server no longer runs as prepared: gone
    /// (26000), or its table changed shape ("cached plan must not change
    /// result type", 0A000). Preparing it again mends it.
    pub fn is_stale_statement(&self) -> bool {
        matches!(self.sqlstate.as_deref(), Some("26000" | "0A000"))
    }

    /// `err` with `context` (what was being done, where) before it.
    pub fn from_client(context: &str, err: &tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => PgFailure {
                kind: classify(db.code().code()),
                message: format!("{context}: {}", db.message()),
                sqlstate: Some(db.code().code().to_string()),
                table: db.table().map(str::to_string),
                detail: db.detail().map(str::to_string),
                lost: err.is_closed() || ends_the_session(db.code().code()),
            },
            // A value the parameter's type cannot hold (2**31 for an
            // integer column, say): the data's fault, as psycopg says.
            None if err.to_string().starts_with("error serializing parameter") => {
                let cause = std::error::Error::source(err)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                PgFailure::new(ErrorKind::Data, format!("{context}: {err}{cause}"))
            }
            None if err.is_closed() => PgFailure {
                lost: true,
                ..PgFailure::new(
                    ErrorKind::Interface,
                    format!("{context}: lost the connection to PostgreSQL: {err}"),
                )
            },
            None => PgFailure::new(ErrorKind::Operational, format!("{context}: {err}")),
        }
    }
}

/// SQLSTATEs the server sends as it ends a session: an administrator's
/// termination, a shutdown, a crash; and connection exceptions.
fn ends_the_session(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

/// The PEP 249 class of a SQLSTATE, by its class (first two characters),
/// as psycopg classifies them.
pub fn classify(code: &str) -> ErrorKind {
    match code.get(..2).unwrap_or("") {
        "23" => ErrorKind::Integrity,
        "22" => ErrorKind::Data,
        "0A" => ErrorKind::NotSupported,
        "XX" => ErrorKind::Internal,
        "08" | "53" | "54" | "55" | "57" | "58" | "40" | "25" | "HV" => ErrorKind::Operational,
        "42" | "26" | "2B" | "3D" | "3F" | "44" | "34" | "0L" | "0P" | "28" => {
            ErrorKind::Programming
        }
        _ => ErrorKind::Database,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_fall_into_pep_249_classes() {
        assert_eq!(classify("23505"), ErrorKind::Integrity);
        assert_eq!(classify("55P03"), ErrorKind::Operational);
        assert_eq!(classify("42P01"), ErrorKind::Programming);
        assert_eq!(classify("22P02"), ErrorKind::Data);
        assert_eq!(classify("XX000"), ErrorKind::Internal);
        assert_eq!(classify(""), ErrorKind::Database);
    }
}

//! The exception classes live in Python (`eventsourcing_rs.persistence`,
//! the 9.1 hierarchy); Rust raises them by importing them on first use.

use pyo3::import_exception;

import_exception!(eventsourcing_rs.persistence, IntegrityError);
import_exception!(eventsourcing_rs.persistence, TrackingRefused);
import_exception!(eventsourcing_rs.persistence, LeaseLost);
import_exception!(eventsourcing_rs.persistence, DataError);
import_exception!(eventsourcing_rs.persistence, OperationalError);
import_exception!(eventsourcing_rs.persistence, ProgrammingError);
import_exception!(eventsourcing_rs.persistence, InterfaceError);
import_exception!(eventsourcing_rs.persistence, DatabaseError);
import_exception!(eventsourcing_rs.persistence, InternalError);
import_exception!(eventsourcing_rs.persistence, NotSupportedError);

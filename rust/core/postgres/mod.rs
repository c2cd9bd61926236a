//! PostgreSQL persistence: connections to a database and the statements
//! recorders run on them, free of Python types. The binding layer gives
//! the SQL (made by the Python recorders, the same as 9.1's tables) and
//! releases the GIL around every call into this module.

pub mod connections;
pub mod error;
pub mod group_write;
pub mod listener;
pub mod tls;
pub mod value;

pub use connections::{Connections, PgSettings, Written};
pub use error::PgFailure;
pub use group_write::WriteRequest;
pub use tls::{SslMode, Tls, TlsFiles};
pub use value::{AnyInt, PgValue, RawUuid};

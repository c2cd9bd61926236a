//! SQLite persistence: the datastore's connections and the recorders'
//! SQL, free of Python types. The binding layer releases the GIL around
//! every call into this module.

pub mod datastore;
pub mod error;
pub mod group_commit;
pub mod recorder;

#[cfg(test)]
mod tests;

pub use datastore::{Datastore, Lease, Role};
pub use error::{ErrorKind, StoreError, StoreResult};
pub use recorder::{
    EventRecord, EventRow, EventRows, LeaseFence, NotificationRecord, RecorderKind, SqliteRecorder,
};

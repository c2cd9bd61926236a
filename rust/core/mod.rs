//! Pure logic, free of Python types, unit-tested with `cargo test`.

pub mod datetime_iso;
pub mod float_repr;
pub mod group_commit;
pub mod json;
pub mod memory_store;
pub mod postgres;
pub mod process_epoch;
pub mod prompt_queue;
pub mod random_pool;
pub mod section_id;
pub mod segment;
pub mod sqlite;
pub mod tracking;

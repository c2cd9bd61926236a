//! The thin PyO3 layer over `crate::core`.

pub mod application_save;
pub mod cpython_internals;
pub mod errors;
pub mod follower_pull;
pub mod key_cache;
pub mod mapper;
pub mod memory_recorder;
pub mod method_guard;
pub mod notify;
pub mod objects;
pub mod postgres;
pub mod prompt_queue;
pub mod pull_kernel;
pub mod reader;
pub mod sqlite_recorder;
pub mod tracking;
pub mod transcoder;
pub mod uuids;
pub mod values;

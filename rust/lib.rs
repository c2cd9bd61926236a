//! eventsourcing-rs: the Rust core of the `eventsourcing_rs` Python package.

pub mod bindings;
pub mod core;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use bindings::*;
    m.add_class::<values::StoredEvent>()?;
    m.add_class::<values::Notification>()?;
    m.add_class::<values::Tracking>()?;
    m.add_class::<memory_recorder::MemoryRecorder>()?;
    m.add_class::<sqlite_recorder::SqliteDatastore>()?;
    m.add_class::<sqlite_recorder::SqliteTransaction>()?;
    m.add_class::<sqlite_recorder::SqliteRecorder>()?;
    m.add_class::<postgres::PostgresConnections>()?;
    m.add_class::<postgres::PostgresListener>()?;
    m.add_class::<prompt_queue::PromptQueue>()?;
    m.add_class::<reader::SelectReader>()?;
    m.add_class::<reader::SectionReader>()?;
    m.add_class::<transcoder::JsonCodec>()?;
    m.add_class::<mapper::EventMapper>()?;
    m.add_class::<tracking::TrackingBook>()?;
    m.add_class::<method_guard::MethodGuard>()?;
    m.add_class::<pull_kernel::PullKernel>()?;
    m.add_class::<follower_pull::FollowerPull>()?;
    m.add_class::<application_save::ApplicationSave>()?;
    m.add_function(wrap_pyfunction!(reader::parse_section_id, m)?)?;
    m.add_function(wrap_pyfunction!(reader::section_start_and_limit, m)?)?;
    m.add_function(wrap_pyfunction!(reader::format_section_id, m)?)?;
    m.add_function(wrap_pyfunction!(uuids::uuid4, m)?)?;
    m.add_function(wrap_pyfunction!(objects::instance_with_dict, m)?)?;
    m.add_function(wrap_pyfunction!(objects::now, m)?)?;
    m.add_function(wrap_pyfunction!(follower_pull::drain_prompts, m)?)?;
    objects::remember_datetime_now(m.py())?;
    Ok(())
}

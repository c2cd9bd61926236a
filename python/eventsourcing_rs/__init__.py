"""eventsourcing-rs: the eventsourcing 9.1 API with a Rust core."""

__version__ = "0.1.0"

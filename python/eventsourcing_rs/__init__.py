"""eventsourcing-rs: the eventsourcing 9.1 API with a Rust core."""

import logging

__version__ = "0.1.0"

# Quiet unless the application configures logging: records of the
# "eventsourcing_rs" logger (follower errors, runner start and stop) go
# wherever the application sends them.
logging.getLogger("eventsourcing_rs").addHandler(logging.NullHandler())

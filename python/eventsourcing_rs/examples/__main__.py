"""Runs the example system: ``python -m eventsourcing_rs.examples``."""

from eventsourcing_rs.examples.run_orders import main

main()

"""Prefect flows of the lab loop: wiring only; the work is in `tasks/`."""

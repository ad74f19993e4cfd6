"""Fixtures for tests and benchmarks: random-weight checkpoints written in the released formats the
adapters read (`checkpoints`). Not used by the workflow."""

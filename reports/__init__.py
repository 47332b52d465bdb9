"""Immutable PDF reports, their rendering task and the public verification."""

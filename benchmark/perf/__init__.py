"""Benchmarks that print figures (speed and memory targets are measured here, never in timed tests)."""

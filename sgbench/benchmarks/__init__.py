"""Benchmarks: commands that print figures (wall time, memory), never timed tests."""

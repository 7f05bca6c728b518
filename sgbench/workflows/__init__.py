"""Workflows that orchestrate runs: `bench`, `sweep`, `train` (with its recipes), the sample-and-evaluate
jobs they share, and the speed and memory benchmarks (commands that print figures, never timed tests)."""

"""Benchmarks: `python -m benchmarks KIND [flags]`, one JSON object per line on stdout."""

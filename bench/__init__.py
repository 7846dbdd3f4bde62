"""Benchmarks: end-to-end throughput, the expert queue, and a mixed-traffic soak.

Each is one command run from the repository root (`.venv/bin/python bench/throughput.py`) that
prints a table and, as its last line, `key=value` figures to compare runs by.
"""

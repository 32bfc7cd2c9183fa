"""Benchmarks, run by hand (README: the figures and the commands that made them)."""

"""Benchmarks run by hand (see README.md here); importable so the tests can reach the baselines."""

"""Benchmarks: each compares the product against a baseline measured in the same run."""

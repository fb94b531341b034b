"""Synthetic data: ideal network outputs for tests and benchmarks, and driving-like sequences."""

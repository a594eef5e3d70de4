"""Benchmarks: `anomstream bench` (throughput, latency, memory, start-up, scale-out) and the model-quality script."""

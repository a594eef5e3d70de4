"""Autoencoders for telemetry windows: data, training, thresholds, artifacts, evaluation, and the Python API."""

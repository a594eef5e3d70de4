"""Autoencoders for telemetry windows: data, training, thresholds, artifacts, evaluation."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU flags) would drown our own
# stderr lines; a user who wants it back sets TF_CPP_MIN_LOG_LEVEL=0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

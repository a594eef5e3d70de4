"""anomstream: streaming anomaly detection for telemetry windows with a Keras autoencoder over Kafka.

The Python API scores windows with a trained artifact, exactly as the worker does:

    import anomstream
    detector = anomstream.load("artifacts/ecg-dense")   # runtime="auto" | "tensorflow" | "litert"
    result = detector.score(windows)                      # numpy array, one window per row
    result.errors, result.anomalous

Everything else is the `anomstream` command (`python -m anomstream`).
"""

from anomstream.errors import AnomstreamError, ArtifactError, ConfigError, DataError, ThresholdError, WindowError
from anomstream.models.detector import Detector, Scores, load

__version__ = "0.1.0"

__all__ = [
    "AnomstreamError",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "Detector",
    "Scores",
    "ThresholdError",
    "WindowError",
    "__version__",
    "load",
]

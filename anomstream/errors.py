"""The project's exceptions: one root, a few named children.

Each message is one sentence that names what was wrong and what to do; the CLI
prints it as is and exits with the class's exit code (2: usage or
configuration, 1: runtime failure).
"""


class AnomstreamError(Exception):
    """Root of every error anomstream raises on purpose."""

    exit_code = 1


class ConfigError(AnomstreamError):
    """A flag, environment variable or config file is wrong."""

    exit_code = 2


class DataError(AnomstreamError):
    """A data set file is missing, unreadable or malformed."""

    exit_code = 2


class ArtifactError(AnomstreamError):
    """A model artifact is missing, corrupt or incompatible."""

    exit_code = 2


class ThresholdError(AnomstreamError):
    """A threshold was asked for with inputs it cannot be fitted on."""

    exit_code = 2


class WindowError(AnomstreamError, ValueError):
    """Windows handed to `Detector.score` have the wrong shape, type or values."""

    exit_code = 2

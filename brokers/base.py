"""What every broker shares: the interface, the error, free ports, and the readiness probe."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from anomstream.errors import AnomstreamError

READINESS_TRANSACTIONAL_ID = "anomstream-readiness-probe"


class BrokerError(AnomstreamError):
    """A test or embedded broker could not be found, started, reached or stopped."""

    exit_code = 1


def free_port(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """Return a TCP port that is free right now on ``host`` and not in ``avoid``, so brokers never collide.

    The kernel may hand the same ephemeral port to two binds in a row once the first socket is closed: a broker
    that asked twice got one port for two listeners and Kafka refused to start (CI, 2026-12-02). ``avoid`` holds
    the ports already chosen.
    """
    taken = set(avoid)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def wait_until_ready(
    bootstrap: str,
    timeout: float,
    *,
    transactions: bool = True,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until a metadata round trip works and, if asked, a transactional producer can init.

    ``alive`` is an optional callable returning ``False`` once the broker process died,
    which turns a long wait into an immediate failure.
    """
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    from anomstream.stream import clients  # quiet: a probe expects refused connections, so librdkafka's lines go at DEBUG

    deadline = time.monotonic() + timeout
    admin = clients.create(AdminClient, {"bootstrap.servers": bootstrap}, quiet=True)
    while True:
        if alive is not None and not alive():
            raise BrokerError(f"The broker process exited before {bootstrap} answered: see its log below.")
        try:
            if admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic()))).brokers:
                break
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            raise BrokerError(f"No Kafka broker answered on {bootstrap} within {timeout:.0f} s: see its log below.")
        time.sleep(0.2)
    if not transactions:
        return
    producer = clients.create(
        Producer, {"bootstrap.servers": bootstrap, "transactional.id": READINESS_TRANSACTIONAL_ID}, quiet=True
    )
    try:
        producer.init_transactions(max(1.0, deadline - time.monotonic()))
    except KafkaException as exc:
        raise BrokerError(
            f"The broker on {bootstrap} answers but cannot initialise a transactional producer ({exc}): see its log."
        ) from exc


class Broker(Protocol):
    """What the tests and the demo need from any broker."""

    name: str

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self) -> Broker: ...

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 60) -> str: ...

    def __enter__(self) -> Broker: ...

    def __exit__(self, *exc: object) -> None: ...

import socket
import time
import urllib.request

from anomstream.stream.health import Health, serve


def test_ready_needs_model_broker_and_partitions():
    health = Health()
    assert health.ready() == (False, "model not loaded")
    health.model_ready = True
    assert health.ready() == (False, "broker unreachable")
    health.broker_up = True
    assert health.ready() == (False, "no partitions assigned")
    health.assigned = True
    assert health.ready() == (True, "ok")


def test_a_loop_stuck_on_kafka_is_unready_before_it_is_dead():
    health = Health(stall_after_s=0.4, busy_after_s=0.1)
    health.model_ready = health.broker_up = health.assigned = True
    health.turned()
    time.sleep(0.2)
    ready, why = health.ready()
    assert not ready and why.startswith("the poll loop has been waiting on Kafka")
    assert health.alive() == (True, "ok")
    time.sleep(0.3)
    alive, why = health.alive()
    assert not alive and why.startswith("the poll loop has not turned for")
    health.turned()
    assert health.ready() == (True, "ok") and health.alive() == (True, "ok")


def test_the_server_listens_only_on_the_address_it_is_given():
    """--metrics-host is honoured: bound to 127.0.0.2 (loopback on Linux), 127.0.0.1 gets no answer."""
    server = serve(Health(), "127.0.0.2", 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.2"
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        with socket.socket() as other:
            assert other.connect_ex(("127.0.0.1", port)) != 0  # refused: not listening there
    finally:
        server.shutdown()
        server.server_close()

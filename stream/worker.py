"""The worker: poll_batch -> score -> produce -> commit, until told to stop.

Resources live on an ExitStack, so however the loop ends (stop flag, fatal
error) the consumer is closed and the HTTP server shut down. A stop request
only sets a flag: the batch in hand is finished and committed first.

While Kafka takes outputs slower than they come (`delivery.backlogged`),
`poll_batch` takes no batch: it pauses the partitions, keeps polling (the
group evicts a member that stops polling for `max.poll.interval.ms`) and hands
the waiting outputs over; the loop still turns, so /healthz stays 200 while
/readyz says it waits on Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from anomstream.models.detector import Detector, Scores
from anomstream.stream import clients, codec, heap, metrics, verdict
from anomstream.stream.at_least_once import AtLeastOnce
from anomstream.stream.batcher import Batcher
from anomstream.stream.dead_letters import DeadLetters, topic_limit
from anomstream.stream.delivery import Record
from anomstream.stream.drift import DriftWindow
from anomstream.stream.exactly_once import ExactlyOnce, MembershipLost, ProducerWedged
from anomstream.stream.health import Health, serve
from anomstream.stream.lag import Lag
from anomstream.stream.live_model import LiveModel
from anomstream.stream.settings import WorkerSettings

log = logging.getLogger("anomstream.worker")

PAUSE_AFTER_S = 1.0  # a wait for Kafka this long pauses the partitions (short waits, e.g. before a commit, do not)


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        self.health = Health()
        self.model: LiveModel | None = None
        self.http_port: int | None = None  # the bound port (useful with --metrics-port 0)
        self.batches = 0
        self.batches_committed = 0
        self._stuck_producers: list[Any] = []
        # (topic, partition) assigned now, kept by the rebalance callbacks: asking the consumer from another
        # thread blocks while it rebalances.
        self.owned: set[tuple[str, int]] = set()
        self.paused = False  # the assignment is paused while outputs wait for room
        self.lag = Lag(settings.input_topic)
        self.drift = DriftWindow(settings.drift_window, settings.drift_max_age_s, settings.drift_min_windows)

    def stop(self) -> None:
        """Signal-safe: only sets the flag the loop checks between batches."""
        self.stopping.set()

    def reload_model(self) -> None:
        if self.model is not None:
            self.model.request_reload()

    def run(self) -> None:
        s = self.settings
        with ExitStack() as stack:
            server = serve(self.health, s.metrics_host, s.metrics_port)
            self.http_port = server.server_address[1]
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
            log.info("metrics, /healthz and /readyz on http://%s:%d", s.metrics_host, self.http_port)

            self.model = LiveModel(s.model, warm_batch=s.max_batch, runtime=s.runtime, threads=s.litert_threads)
            self.health.model_ready = True
            self.model.watch(s.reload_interval_s)
            stack.callback(self.model.stop)
            self.drift.use(self.model.current.metadata)
            self.drift.export()

            errors = self._errors = clients.ErrorWatch(on_all_down=self._broker_down)
            admin = clients.wait_for_broker(s.common_config(), s.startup_timeout_s, errors)
            self.health.broker_up = True
            topics = [s.input_topic, s.scores_topic, s.output_topic, s.dlq_topic]
            clients.ensure_topics(admin, topics, s.bootstrap_servers, s.create_topics)
            self.dead_letters = DeadLetters(s.dlq_topic, topic_limit(admin, s.dlq_topic))
            del admin  # never polled again: alive, it would keep queueing librdkafka's log lines during an outage

            producer = clients.create(Producer, clients.producer_config(s, errors))
            config = clients.consumer_config(s, errors, self._broker_state, self.lag.on_statistics)
            consumer = self.consumer = clients.create(Consumer, config)
            stack.callback(self._close, consumer)
            self.delivery = (
                self._exactly_once(producer, consumer)
                if s.exactly_once
                else AtLeastOnce(producer, consumer, self.stopping)
            )
            stack.callback(self._flush_on_exit)
            self.batcher = Batcher(consumer, s.max_batch, s.max_wait_ms)
            consumer.subscribe([s.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info("worker consuming %s as group %s (%s)", s.input_topic, s.group_id, s.delivery)
            heap.settle()
            stack.callback(heap.release)

            try:
                while not self.stopping.is_set():
                    self.health.turned()
                    self.process(self.poll_batch())
                    self.commit()
                    self.settle_after_reload()
                self.commit(final=True)
            except BaseException:
                self.delivery.abort_open()
                raise
            log.info("stopping: %d batches processed; last batch committed", self.batches)

    def settle_after_reload(self) -> None:
        """Between batches, when no batch holds the old model any more: free its cycles and freeze the new one."""
        if self.model.swapped.is_set():
            self.model.swapped.clear()
            heap.settle()

    def poll_batch(self) -> list[Any]:
        """The next batch; none while outputs wait for room (see `wait_for_room`)."""
        if self.delivery.backlogged:
            self.wait_for_room()
            return []
        if self.health.waiting_since is not None:
            self._flowing()
        started = time.perf_counter()
        messages = self.batcher.poll()
        if messages:
            metrics.BATCH_DURATION.labels("poll").observe(time.perf_counter() - started)
        return messages

    def wait_for_room(self) -> None:
        """Serve delivery reports while outputs wait for Kafka; past PAUSE_AFTER_S, hold the partitions and keep
        the membership alive (a poll that takes nothing)."""
        now = time.monotonic()
        if self.health.waiting_since is None:
            self.health.waiting_since = now
        if not self.paused and now - self.health.waiting_since >= PAUSE_AFTER_S:
            self.consumer.pause(self.consumer.assignment())  # pausing drops the prefetched input: not for short waits
            self.paused = True
        # The poll may run the rebalance callbacks (they commit what is in hand). A window it returns came from a
        # partition assigned since the pause: it waits in the batcher, and the whole assignment is paused again.
        if self.paused and self.batcher.keep_alive():
            self.consumer.pause(self.consumer.assignment())
        self.delivery.drain(0.1)

    def _flowing(self) -> None:
        if self.paused:
            self.consumer.resume(self.consumer.assignment())
            self.paused = False
        self.health.waiting_since = None

    def process(self, messages: list[Any]) -> None:
        """Score one batch and hand its outputs to the producer; `commit` makes them durable."""
        if not messages:
            return
        self.lag.started(messages)
        loaded = self.model.current  # read once: a hot reload never splits a batch
        self.drift.use(loaded.metadata)
        stage = time.perf_counter()
        batch = codec.decode_batch(messages, loaded.window_shape)
        stage = self._timed("decode", stage)
        sources = [window.source for window in batch.windows]  # a source with its own threshold is judged by it
        scores = loaded.score(batch.values, explain=self.settings.explain, sources=sources)  # one model call (+ one for anomalies)
        stage = self._timed("score", stage)
        records, anomalies = self.verdicts(loaded, batch, scores)
        records += [self.dead_letters.letter(bad) for bad in batch.invalid]
        tally = metrics.BatchTally(
            consumed=len(messages),
            scored=len(batch.windows),
            anomalies=anomalies,
            errors=scores.errors,
            produced_ms=np.fromiter((ts if kind else -1 for kind, ts in (m.timestamp() for m in messages)), np.float64, len(messages)),
            invalid=Counter(bad.reason for bad in batch.invalid),
            offsets=self.next_offsets(messages),
            model_version=loaded.metadata.version,
        )
        try:
            self.delivery.send(records, tally.offsets, tally)
        except ProducerWedged as exc:
            self._replace_producer(exc)  # the new producer's transaction holds this batch too
        self._timed("produce", stage)
        self.batches += 1

    def commit(self, final: bool = False) -> None:
        """Commit what was sent, when the interval is up (or now, on stop and revoke); then count it."""
        if not (final or self.delivery.due()):
            return
        started = time.perf_counter()
        try:
            committed = self.delivery.commit(wait=final)
        except MembershipLost as exc:
            log.warning("%s Its windows are rescored from the last commit.", exc)
            self._rewind()
            return
        except ProducerWedged as exc:
            self._replace_producer(exc)
            if self.delivery.backlogged and not final:
                return  # Kafka is still slow: the loop waits for room (polling), then commits
            committed = self.delivery.commit(wait=True)  # wedged again: it propagates, and the worker exits 1
        if committed:
            self._timed("commit", started)
            self.health.broker_up = True  # a commit proves it
            now = time.time()
            for tally in committed:
                tally.publish(now)
                self.drift.add(tally.errors, tally.model_version)
                self.lag.committed(tally.offsets)
            self.batches_committed += len(committed)

    def _replace_producer(self, exc: ProducerWedged) -> None:
        """A fresh transactional producer with the same id fences the stuck one and redoes its open transaction."""
        stuck = self.delivery
        log.warning("%s Replacing the producer and redoing the open transaction (%d outputs).", exc, len(stuck._records))
        # Never freed: destroying a producer whose call is still stuck would block this thread.
        self._stuck_producers.append(stuck.producer)
        producer = clients.create(Producer, clients.producer_config(self.settings, self._errors))
        fresh = self._exactly_once(producer, stuck.consumer)
        fresh.adopt(stuck)
        self.delivery = fresh
        metrics.PRODUCER_REPLACEMENTS.inc()

    def _rewind(self) -> None:
        """After a dropped transaction: every owned partition resumes from its last commit, the windows in hand too."""
        self.batcher.take()
        try:
            for p in self.consumer.committed([TopicPartition(topic, partition) for topic, partition in self.owned], timeout=10):
                self.consumer.seek(TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else OFFSET_BEGINNING))
        except KafkaException as exc:
            log.warning("could not rewind to the last commit (%s): the rebalance that follows does", exc.args[0].str())

    def _exactly_once(self, producer: Any, consumer: Any) -> ExactlyOnce:
        s = self.settings
        return ExactlyOnce(producer, consumer, s.commit_interval_ms / 1000.0, self.stopping, s.transaction_timeout_ms / 1000.0)

    def verdicts(self, loaded: Detector, batch: codec.Batch, scores: Scores) -> tuple[list[Record], int]:
        """Every verdict to the scores topic, the anomalous ones to the output topic too; and how many those are."""
        scores_topic, anomalies_topic = self.settings.scores_topic, self.settings.output_topic
        encoded = verdict.encode_batch(batch.windows, scores, loaded.model_ref, time.time())
        records: list[Record] = []
        for window, value, anomaly in zip(batch.windows, encoded, scores.anomalous.tolist()):
            key = window.message.key()
            records.append(Record(scores_topic, key, value))
            if anomaly:
                records.append(Record(anomalies_topic, key, value))
        return records, int(scores.anomalous.sum())

    @staticmethod
    def next_offsets(messages: list[Any]) -> list[TopicPartition]:
        """The offset to resume from, per partition: one past the last message of the batch."""
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            last[key] = max(last.get(key, -1), message.offset())
        return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]

    @staticmethod
    def _timed(stage: str, started: float) -> float:
        now = time.perf_counter()
        metrics.BATCH_DURATION.labels(stage).observe(now - started)
        return now

    def _broker_down(self) -> None:
        self.health.broker_up = False

    def _broker_state(self, up: bool) -> None:
        if up and not self.health.broker_up:
            log.info("Kafka is reachable again")
        self.health.broker_up = up

    # Rebalance callbacks run inside consumer.consume(), on this thread.
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")
        # Cooperative rebalancing hands over only what moves (often nothing): the rest is still owned.
        self.owned |= {(p.topic, p.partition) for p in partitions}
        self.health.assigned = bool(self.owned)
        self.lag.assigned(partitions)
        if self.paused:
            consumer.pause(partitions)  # outputs still wait for room: no new input yet

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Finish and commit what is in hand before the partitions go to another worker."""
        log.info("revoked %s: committing the batch in hand first", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self.process(self.batcher.take())
        self.commit(final=True)
        if not self.settings.exactly_once:
            self._commit_stored(consumer)
        self.lag.released(partitions)
        # Cooperative rebalancing revokes only what moves: ready while anything is left.
        self.owned -= {(p.topic, p.partition) for p in partitions}
        self.health.assigned = bool(self.owned)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Lost (not revoked): another worker may own them already, so committing now could be stale.
        log.warning("lost %d partitions; uncommitted windows will be rescored by their new owner", len(partitions))
        self.batcher.take()
        try:
            self.delivery.drop()
        except ProducerWedged as exc:
            self._replace_producer(exc)  # nothing to redo: the fresh producer only fences the stuck one
        self.lag.released(partitions)
        self.owned -= {(p.topic, p.partition) for p in partitions}
        self.health.assigned = bool(self.owned)

    def _flush_on_exit(self) -> None:
        """Whatever the producer in use by then still holds; a failed one says so, not hiding why the loop ended."""
        try:
            self.delivery.producer.flush(10.0)
        except KafkaException as exc:
            log.warning("the producer could not flush on the way out: %s", exc)

    def _close(self, consumer: Any) -> None:
        if not self.settings.exactly_once:
            self._commit_stored(consumer)
        consumer.close()

    @staticmethod
    def _commit_stored(consumer: Any) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("committing stored offsets failed: %s", exc.args[0].str())


class WorkerThread:
    """A worker running on a background thread (demo, tests); its failure surfaces in `wait_ready`/`stop`."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.worker = Worker(settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc

    def wait_ready(self, timeout: float = 120.0) -> WorkerThread:
        deadline = time.monotonic() + timeout
        while not self.worker.health.ready()[0]:
            if not self.thread.is_alive():
                raise self.error or RuntimeError("the worker stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker was not ready after {timeout:.0f} s: {self.worker.health.ready()[1]}")
            time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.worker.http_port}"

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the worker did not stop within {timeout:.0f} s")

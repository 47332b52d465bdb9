"""Queue depth per queue is read from the broker: the file-system broker
(embedded mode) and Redis count the messages waiting; a broker that is down is
reported, quickly, instead of breaking the page."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection

from marrowfind.celery import app
from monitoring.broker import configured_queues, queue_depths
from tests.base import BaseTestCase
from tests.workerproc import purge_broker, require_services


def send(connection, queue: str, n: int) -> None:
    for _ in range(n):
        # A task no worker will run here: it only has to sit in the queue.
        app.send_task("diagnostics.tasks.finalize_case", args=[0], queue=queue, connection=connection)


class ConfiguredQueuesTests(BaseTestCase):
    def test_the_routed_queues(self):
        self.assertEqual(configured_queues(), ["priority", "gpu", "cpu"])


class FileSystemBrokerTests(BaseTestCase):
    def test_counts_the_waiting_messages_per_queue(self):
        with tempfile.TemporaryDirectory() as folder:
            for sub in ("queue", "processed", "control"):
                (Path(folder) / sub).mkdir()
            options = {"data_folder_in": f"{folder}/queue", "data_folder_out": f"{folder}/queue",
                       "processed_folder": f"{folder}/processed", "control_folder": f"{folder}/control",
                       "store_processed": False}
            with Connection("filesystem://", transport_options=options) as connection:
                send(connection, "gpu", 3)
                send(connection, "cpu", 1)
            state = queue_depths(url="filesystem://", transport_options=options)
        self.assertTrue(state.ok, state.error)
        self.assertEqual(state.transport, "filesystem")
        self.assertEqual({q.name: q.waiting for q in state.queues}, {"priority": 0, "gpu": 3, "cpu": 1})


class UnreachableBrokerTests(BaseTestCase):
    def test_a_broker_that_is_down_is_reported_not_raised(self):
        started = time.monotonic()
        state = queue_depths(url="redis://127.0.0.1:1/0")  # nothing listens on port 1
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertFalse(state.ok)
        self.assertIn("Connection refused", state.error)
        self.assertEqual([q.waiting for q in state.queues], [None, None, None])


@pytest.mark.services
class RedisQueueDepthTests(BaseTestCase):
    def setUp(self):
        require_services()
        super().setUp()
        purge_broker()
        self.addCleanup(purge_broker)

    def test_counts_the_waiting_messages_per_queue(self):
        with app.connection_for_write() as connection:
            send(connection, "cpu", 4)
            send(connection, "priority", 2)
        state = queue_depths()
        self.assertTrue(state.ok, state.error)
        self.assertEqual(state.transport, "redis")
        self.assertEqual({q.name: q.waiting for q in state.queues}, {"priority": 2, "gpu": 0, "cpu": 4})
        self.assertEqual({q.name: q.unacked for q in state.queues}, {"priority": 0, "gpu": 0, "cpu": 0})
        self.assertIn(settings.CELERY_BROKER_URL.rsplit("@", 1)[-1].split("//", 1)[-1], state.url)

    def test_a_delivered_unacknowledged_message_counts_as_unacked(self):
        with app.connection_for_write() as connection:
            send(connection, "gpu", 2)
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue("gpu", no_ack=False)
            message = queue.get(timeout=5)  # delivered, not acknowledged: what a busy worker holds
            state = queue_depths()
            self.assertEqual({q.name: (q.waiting, q.unacked) for q in state.queues}["gpu"], (1, 1))
            message.ack()
            queue.close()
        self.assertEqual({q.name: q.unacked for q in queue_depths().queues}["gpu"], 0)

"""A failed job's traceback, which RQ keeps in Redis for dashboards, has its numbers masked."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker, Worker

from sms_service.domain.phones import mask
from workers.broadcast_worker import BroadcastWorker, SimpleBroadcastWorker
from workers.masked_failures import MaskedFailures

PHONE = "+12025550177"


def fail_with_a_number(phone: str) -> None:
    """A job failing the way a unique violation does, with the number in its text."""
    raise ValueError(f"duplicate key: Key (phone)=({phone}) already exists")


class MaskedSimpleWorker(MaskedFailures, SimpleWorker):
    pass


class MaskedForkingWorker(MaskedFailures, Worker):
    pass


def run_failing_job(connection, worker_class) -> str:
    queue = Queue("masking-test", connection=connection)
    job = queue.enqueue(fail_with_a_number, PHONE)
    worker_class([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.is_failed
    return job.latest_result().exc_string


@pytest.mark.parametrize("worker_class", [MaskedSimpleWorker, MaskedForkingWorker])
def test_the_stored_traceback_of_a_failed_job_is_masked(redis_connection, worker_class):
    stored = run_failing_job(redis_connection, worker_class)
    assert "fail_with_a_number" in stored and "already exists" in stored
    assert PHONE not in stored
    assert mask(PHONE) in stored


def test_without_the_mixin_rq_stores_the_number_in_clear(redis_connection):
    assert PHONE in run_failing_job(redis_connection, SimpleWorker)


def test_the_service_workers_mask_their_failures():
    assert issubclass(BroadcastWorker, MaskedFailures)
    assert issubclass(SimpleBroadcastWorker, MaskedFailures)

"""A real Celery worker killed (SIGKILL) while its export request is in flight: the cursor has
not moved, and the next run resends exactly that batch with the same deduplication ids."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from analytics import tasks
from analytics.exports.models import Exporter, Vendor
from flags.models import Environment
from tests.integration.analytics.test_exports import (
    amplitude_ids,
    insert_ids,
    make_exporter,
    mixpanel_ids,
    store_exposures,
)
from tests.support.processes import WorkerProcess, wait_until
from tests.support.vendor_server import VendorServer

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    server = VendorServer()
    yield server
    server.close()


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[WorkerProcess]]:
    monkeypatch.setenv("FLAGSITE_EXPORT_SETTLE_SECONDS", "0")
    monkeypatch.setenv("FLAGSITE_EXPORT_RETRY_BASE_SECONDS", "0.01")
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(started: list[WorkerProcess]) -> WorkerProcess:
    worker = WorkerProcess(connection.settings_dict["NAME"])
    worker.start()
    started.append(worker)
    return worker


@pytest.mark.parametrize(
    ("vendor_kind", "path", "ids"),
    [
        (Vendor.MIXPANEL, "/import", mixpanel_ids),
        (Vendor.AMPLITUDE, "/2/httpapi", amplitude_ids),
    ],
)
def test_a_worker_killed_mid_batch_resends_it_with_the_same_ids(
    environment: Environment,
    vendor: VendorServer,
    workers: list[WorkerProcess],
    vendor_kind: str,
    path: str,
    ids: Any,
) -> None:
    raw_ids = store_exposures(environment, 5)
    exporter = make_exporter(environment, vendor_kind, vendor.url)
    vendor.hold(path)
    first = start_worker(workers)

    tasks.export_exposures.delay()
    wait_until(lambda: len(vendor.to(path)) == 1, 60, "the worker's request to the vendor")
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    first.proc = None
    exporter.refresh_from_db()
    assert (exporter.cursor, exporter.exported_events) == (0, 0)

    vendor.release(path)
    start_worker(workers)
    tasks.export_exposures.delay()  # the next beat

    def caught_up() -> bool:
        return Exporter.objects.get(pk=exporter.pk).cursor == raw_ids[-1]

    wait_until(caught_up, 60, "the exporter to catch up after the restart")
    exporter.refresh_from_db()
    assert exporter.exported_events == 5
    expected = insert_ids(raw_ids, environment)
    # Sent twice (the first answer never reached the killed worker), with the same ids.
    assert len(vendor.to(path)) == 2
    assert ids(vendor, 0) == ids(vendor, 1) == expected

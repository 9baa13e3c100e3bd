"""The Celery app: Redis broker in production, a file-based broker in the embedded demo."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")

app = Celery("flagsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="flagsite.ping")
def ping(value: str) -> dict[str, str]:
    """A round-trip probe: proves a worker is consuming from the broker."""
    return {"pong": value, "worker_pid": str(os.getpid())}

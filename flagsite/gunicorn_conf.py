"""gunicorn settings for production: uvicorn workers serve the ASGI app."""

import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "uvicorn_worker.UvicornWorker"
# SSE streams stay open for hours; the heartbeat keeps them alive, so no request timeout applies.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "0"))
graceful_timeout = 10
keepalive = 5
accesslog = None

"""ASGI entry point: streams (SSE) hold a coroutine each, not a thread."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")

application = get_asgi_application()

"""Celery tasks for analytics (thin wrappers around services)."""

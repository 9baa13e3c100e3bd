"""Create the configured PostgreSQL database when it does not exist yet.

The run command calls this before migrating, so pointing DATABASE_URL at a fresh server just
works; an unreachable server is a one-line error that names it, not a traceback.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections


class Command(BaseCommand):
    help = "Create the PostgreSQL database named by DATABASE_URL if it is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.vendor != "postgresql":
            return  # SQLite creates its file on first use
        settings = connection.settings_dict
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 5432}"
        name = settings["NAME"]
        try:
            connection.ensure_connection()
            return
        except OperationalError as exc:
            if f'database "{name}" does not exist' not in str(exc):
                raise CommandError(f"Cannot connect to PostgreSQL at {where}: {exc}") from exc
        try:
            # The maintenance database, as Django's own test-database creation does.
            with connection._nodb_cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
        except Exception as exc:
            raise CommandError(f"Cannot create database {name!r} at {where}: {exc}") from exc
        finally:
            connection.close()
        self.stdout.write(f"Created database {name!r} at {where}.")

"""Create the configured PostgreSQL database when it does not exist yet.

The run command calls this before migrating, so pointing DATABASE_URL at a fresh server just
works; an unreachable server is a one-line error that names it, not a traceback.

It connects with psycopg directly, never through Django's connection: in production mode that
connection comes from a pool, and a pool that cannot connect only reports a timeout after
30 s, hiding the "database does not exist" answer this command needs to see.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import errors, sql

_PARAMETERS = ("dbname", "user", "password", "host", "port", "sslmode", "sslrootcert", "sslcert")
_MAINTENANCE_DATABASE = "postgres"


class Command(BaseCommand):
    help = "Create the PostgreSQL database named by DATABASE_URL if it is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.vendor != "postgresql":
            return  # SQLite creates its file on first use
        params = connection.get_connection_params()
        direct = {k: params[k] for k in _PARAMETERS if params.get(k) not in (None, "")}
        where = f"{direct.get('host') or 'localhost'}:{direct.get('port') or 5432}"
        name = str(direct["dbname"])
        try:
            psycopg.connect(**direct, connect_timeout=10).close()
            return
        except psycopg.Error as exc:
            # A refused connection carries no SQLSTATE, only the server's message.
            missing = f'database "{name}" does not exist' in str(exc)
            if not missing and not isinstance(exc, errors.InvalidCatalogName):
                raise CommandError(
                    f"Cannot connect to PostgreSQL at {where}: {_first_line(exc)}"
                ) from exc
        maintenance = {**direct, "dbname": _MAINTENANCE_DATABASE}
        try:
            with psycopg.connect(**maintenance, autocommit=True, connect_timeout=10) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            return  # another process created it in the meantime
        except psycopg.Error as exc:
            raise CommandError(
                f"Cannot create database {name!r} at {where}: {_first_line(exc)}"
            ) from exc
        self.stdout.write(f"Created database {name!r} at {where}.")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

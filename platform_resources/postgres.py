"""Dagster resource for a PostgreSQL database (the source, or the platform's tracking DB)."""

from __future__ import annotations

import dagster as dg

from platform_resources.config import PostgresSettings


class PostgresResource(dg.ConfigurableResource):
    """Connection settings; unset fields fall back to the libpq variables at run time.

    ``env_prefix`` selects ``{prefix}PGHOST`` etc. first (``PLATFORM_`` for the
    tracking database). It opens no connection: the engine does, when a run needs one
    (``Services.platform_connection``).
    """

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    env_prefix: str = ""

    def settings(self) -> PostgresSettings:
        env = PostgresSettings.from_env(prefix=self.env_prefix)
        return PostgresSettings(
            host=self.host or env.host,
            port=self.port or env.port,
            user=self.user or env.user,
            password=self.password or env.password,
            dbname=self.dbname or env.dbname,
        )

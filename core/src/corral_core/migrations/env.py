"""Alembic environment: the database comes from Corral's settings, never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import corral_core.models  # noqa: F401  (registers every table on SQLModel.metadata)

config = context.config
database = config.attributes["database"]
engine = database.sync_engine()
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=database.is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()

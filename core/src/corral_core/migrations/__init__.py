"""Database migrations (alembic), run programmatically: ``corral migrate`` and ``corral up``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from corral_core.db import Database

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]


def alembic_config(db: Database | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "corral_core:migrations")
    if db is not None:
        config.attributes["database"] = db
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    engine = db.sync_engine()
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe to run when it is already there."""
    command.upgrade(alembic_config(db), revision)

"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import corral_core.models  # noqa: F401
from corral_core.db import Database
from corral_core.migrations import current_revision, head_revision, upgrade
from corral_core.testing import TestDeployment


def test_upgrade_is_idempotent_and_matches_the_models(deployment: TestDeployment) -> None:
    db = Database(deployment.settings().database_url)
    assert current_revision(db) is None
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision()
    engine = db.sync_engine()
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == [], "models changed without a migration: generate one with alembic"

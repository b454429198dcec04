"""Alembic environment of the annotation store: run on the connection that camels.annotate.store passes."""

from __future__ import annotations

from alembic import context

from camels.annotate.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - camels always passes one
    raise RuntimeError("run migrations through camels.annotate.store.upgrade(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place: batch mode copies the table (a no-op on other databases).
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

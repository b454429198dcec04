"""Opening the store: migrate to the newest schema, and the secret key kept with the database.

``open_store(db)`` is what the CLI and the app factory call: it builds the engine, runs the Alembic
migrations up to head (a fresh file gets the whole schema, an old one its missing steps; every step is
recorded in ``alembic_version``), and returns a :class:`Store` with a session factory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from camels.annotate.db import Setting, database_url, make_engine, make_sessionmaker
from camels.core.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SECRET_KEY_ENV = "CAMELS_ANNOTATE_SECRET_KEY"


def _alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (default: the newest)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@dataclass
class Store:
    url: str
    engine: Engine
    Session: sessionmaker

    def secret_key(self) -> str:
        """The session-signing key: generated once and kept in the ``settings`` table (the same for every
        server process on this database, so sessions survive a restart)."""
        with self.Session() as s:
            row = s.get(Setting, "secret_key")
            if row is not None:
                return row.value
            s.add(Setting(key="secret_key", value=secrets.token_hex(32)))
            try:
                s.commit()
            except IntegrityError:  # another process generated it first: use theirs
                s.rollback()
            return s.scalars(select(Setting.value).where(Setting.key == "secret_key")).one()


def open_store(db: str | Path, *, migrate: bool = True) -> Store:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = database_url(db)
        if url.startswith("sqlite:///") and url != "sqlite:///":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(url)
    except (ArgumentError, NoSuchModuleError) as e:
        raise ConfigError(f"database {str(db)!r}: {e}") from None
    if migrate:
        upgrade(engine)
    return Store(url=url, engine=engine, Session=make_sessionmaker(engine))

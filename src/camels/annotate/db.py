"""The annotation store: SQLAlchemy 2 models and the engine (SQLite file by default, any URL by config).

Tables: ``settings`` (the generated secret key), ``users`` (admins and annotators), ``invitations``
(one-time links, stored as hashes), ``studies`` (one import: model A vs model B), ``pairs`` (one prompt and
the two outputs), ``assignments`` (a pair given to an annotator, with the order it was shown in),
``annotations`` (one per assignment), ``submissions`` (the idempotency key of every accepted answer or
change of answer) and ``judge_verdicts`` (an LLM judge's choice on a pair, for human-vs-judge agreement).

Answers are stored in the study's terms, not in screen terms: ``acceptable_a``/``acceptable_b`` and
``preference`` on -2..2 (-2 = A clearly better, -1 = A slightly better, 0 = tie, 1 = B slightly better,
2 = B clearly better); the assignment's ``a_first`` records which response was shown first (left).

The schema is created and changed only by the migrations in ``camels/annotate/migrations`` (Alembic);
``tests/annotate`` checks that the migrated schema equals these models.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped to end every session of the user (password change, deactivation).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Invitation(Base):
    __tablename__ = "invitations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    source_a: Mapped[str] = mapped_column(Text)
    source_b: Mapped[str] = mapped_column(Text)
    annotators_per_pair: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Pair(Base):
    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("study_id", "item_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    item_key: Mapped[str] = mapped_column(Text)
    # The order pairs are handed out in (a seeded shuffle of the input order).
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    output_a: Mapped[str] = mapped_column(Text)
    output_b: Mapped[str] = mapped_column(Text)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "user_id"),
        # Slot i of k: a unique (pair, slot) makes two concurrent allocations of a pair's last slot collide.
        UniqueConstraint("pair_id", "slot"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    a_first: Mapped[bool] = mapped_column(Boolean)
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint("preference BETWEEN -2 AND 2", name="preference_range"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    acceptable_a: Mapped[bool] = mapped_column(Boolean)
    acceptable_b: Mapped[bool] = mapped_column(Boolean)
    preference: Mapped[int] = mapped_column(Integer)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    # The key of the last submission that wrote this row: a retried submission with the same key is
    # answered from the row instead of being applied again.
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Submission(Base):
    """One accepted submission of an annotation (its first answer or a change), by idempotency key."""

    __tablename__ = "submissions"
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class JudgeVerdictRow(Base):
    __tablename__ = "judge_verdicts"
    __table_args__ = (UniqueConstraint("pair_id", "judge"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    judge: Mapped[str] = mapped_column(String(200))
    # -1 = model A preferred, 0 = tie, 1 = model B preferred.
    winner: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL as given (``postgresql+psycopg://...``), or a file path made into a SQLite URL."""
    text = str(db)
    if "://" in text:
        make_url(text)  # raises a clear ArgumentError on a malformed URL
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL: readers never block the writer, and a killed server loses no committed transaction.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)

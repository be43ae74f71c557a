"""Engine set-up: SQLite (WAL, busy timeout, immediate transactions) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from monitor.errors import StoreError
from monitor.logs import redact

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Bound parameters hold customers' phones and ID numbers: never in an error text.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        db_path = url[len("sqlite:///") :]
        if db_path and db_path != ":memory:":
            try:
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the folder for the SQLite database {db_path}: "
                    f"{exc.strerror}. Set store.sqlite_path to a writable place."
                ) from None
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that
        # reads and then writes fails at once (SQLITE_BUSY) when another writer
        # got in between, whatever the busy timeout. The price: one transaction
        # at a time, so never open a second session while one is in progress.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one instance at a time migrates a schema.

    Instances started together on a fresh database would otherwise all create
    the same tables at once, and all but one fail (a unique violation in the
    catalogue). The others wait here, then find the schema already at head.
    SQLite needs none: its migration transaction takes the write lock.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # A session lock on its own connection, keyed by the schema being migrated,
        # so instances of other schemas in the same database do not wait for it.
        lock_id = conn.execute(
            text("SELECT hashtext('koubei-migrate:' || coalesce(current_schema(), ''))")
        ).scalar_one()
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version; safe to run at every start, by many at once."""
    try:
        with _migration_lock(engine):
            command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        where = redact(engine.url.render_as_string(hide_password=True))
        raise StoreError(
            f"cannot reach the database at {where}: {exc.orig}. "
            "Check DATABASE_URL (or store.sqlite_path) and that the server is running."
        ) from None

"""Several instances starting at once on a fresh database all come up migrated."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import monitor.store.tables  # noqa: F401  (registers the tables on the metadata)
from monitor.store.engine import make_engine
from monitor.store.search import uninstall_sqlite

# Each process is an instance starting up: it imports everything, says it is ready,
# then waits for the starting gun so that all of them race on the empty schema.
INSTANCE = """
import sys, time
from pathlib import Path
from monitor.store.engine import make_engine, migrate
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
engine = make_engine(url)
ready.touch()
while not go.exists():
    time.sleep(0.005)
migrate(engine)
"""
INSTANCES = 5
ROUNDS = 2  # a race is a matter of timing: each round is another chance to lose it


def start_together(db_url: str, folder: Path) -> list[tuple[int, str]]:
    """Start INSTANCES migrating processes at once; their exit codes and stderr."""
    folder.mkdir()
    go = folder / "go"
    ready = [folder / f"ready-{i}" for i in range(INSTANCES)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", INSTANCE, db_url, str(flag), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    return [(run.wait(timeout=120), run.communicate()[1]) for run in runs]


def test_instances_migrating_one_fresh_database_at_once_all_succeed(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    try:
        for round_ in range(ROUNDS):
            results = start_together(db_url, tmp_path / f"round-{round_}")
            errors = [err[-800:] for code, err in results if code != 0]
            assert not errors, f"round {round_}: {len(errors)} instances failed: {errors[0]}"
            assert "cases" in inspect(engine).get_table_names()
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert len(versions) == 1
            # Back to a fresh database for the next round (the search index is no model).
            with engine.begin() as conn:
                if engine.dialect.name == "sqlite":
                    uninstall_sqlite(conn)
            SQLModel.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()

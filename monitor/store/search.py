"""Full-text search over posts: SQLite FTS5 (trigram) or PostgreSQL pg_trgm.

Chinese has no spaces between words, so both databases index character
trigrams: any substring of three or more characters is found through the
index. A term of one or two characters (扣款, 闪退) has no trigram; it is
matched as a plain substring (LIKE) over the posts, which is exact but reads
every post, and at one company's volume still answers in milliseconds.

SQLite: `posts_fts` is an external-content FTS5 table over posts.title and
posts.body, kept in step by triggers on insert, update and delete. A later
migration that rebuilds the posts table (Alembic's batch mode on SQLite copies
it) drops the triggers with it and must call `install_sqlite` again.
PostgreSQL: a GIN trigram index on `title || ' ' || body`, which ILIKE uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from monitor.errors import StoreError

FTS_TABLE = "posts_fts"
PG_INDEX = "ix_posts_search_trgm"
MIN_INDEXED = 3  # the trigram tokenizer cannot match a shorter term (FTS5 docs)
MAX_TERMS = 8

_SQLITE_DDL = [
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5("
    "title, body, content='posts', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    f"CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, body) "
    f"VALUES ('delete', old.id, old.title, old.body); END",
    f"CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, body ON posts BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, body) "
    f"VALUES ('delete', old.id, old.title, old.body); "
    f"INSERT INTO {FTS_TABLE}(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    # Index the posts stored before this table existed.
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
]


class SearchSetupError(StoreError):
    """The database cannot hold the search index (no FTS5 trigram, no pg_trgm)."""


def install_sqlite(conn: Connection) -> None:
    version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
    if tuple(int(p) for p in str(version).split(".")[:2]) < (3, 34):
        raise SearchSetupError(
            f"SQLite {version} has no FTS5 trigram tokenizer (3.34 or later is needed for "
            "Chinese search): upgrade SQLite (Python's sqlite3 module links it) and migrate again"
        )
    for statement in _SQLITE_DDL:
        conn.exec_driver_sql(statement)


def uninstall_sqlite(conn: Connection) -> None:
    for trigger in ("posts_fts_insert", "posts_fts_delete", "posts_fts_update"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")


def _trgm_schema(conn: Connection) -> str | None:
    found = conn.execute(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one_or_none()
    return None if found is None else str(found)


def install_postgresql(conn: Connection) -> None:
    schema = _trgm_schema(conn)
    if schema is None:
        # A savepoint: a refused CREATE EXTENSION must not abort the migration's transaction
        # before the message below is raised.
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except Exception as exc:
            raise SearchSetupError(
                "search needs PostgreSQL's pg_trgm extension, and it could not be created "
                f"({type(exc).__name__}: {getattr(exc, 'orig', exc)}). Install it once as a "
                "superuser or the database owner: CREATE EXTENSION pg_trgm; (Debian ships it "
                "with postgresql-contrib), then run the migration again"
            ) from None
        schema = _trgm_schema(conn)
    # The operator class lives in the extension's schema, which need not be on search_path.
    conn.execute(
        text(
            f"CREATE INDEX {PG_INDEX} ON posts USING gin "
            f"((title || ' ' || body) \"{schema}\".gin_trgm_ops)"
        )
    )


def uninstall_postgresql(conn: Connection) -> None:
    # The extension stays: other schemas of the database may use it.
    conn.execute(text(f"DROP INDEX IF EXISTS {PG_INDEX}"))


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic's comparison: the search objects are made by hand, not by the models."""
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    return not (type_ == "index" and name == PG_INDEX)


@dataclass(frozen=True)
class Terms:
    """A query split into terms the index can match and terms matched as substrings."""

    indexed: list[str]
    short: list[str]

    @property
    def empty(self) -> bool:
        return not self.indexed and not self.short


def split_terms(query: str) -> Terms:
    words = list(dict.fromkeys(query.split()))[:MAX_TERMS]  # every word must appear
    return Terms(
        indexed=[w for w in words if len(w) >= MIN_INDEXED],
        short=[w for w in words if len(w) < MIN_INDEXED],
    )


def fts_query(terms: list[str]) -> str:
    """An FTS5 MATCH expression in which the user's text is only ever text.

    Each term is a quoted string (a quote inside doubled), so AND, OR, NOT,
    NEAR, *, ^, : and parentheses typed into the search box are characters to
    find, never query syntax.
    """
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)


def like_pattern(term: str) -> str:
    """A LIKE pattern (escape character backslash) finding `term` as plain text."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"

"""The page's near-duplicate lookup reads, per band, only the newest posts in active,
recent cases, and migration 0011 gives it the (band, post_id) index it reads them from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import Engine, inspect
from sqlmodel import Session

from monitor.cases import NearIndex
from monitor.config import load_settings
from monitor.store.engine import alembic_config, make_engine
from monitor.store.tables import CaseRow, MinhashBandRow, PostRow

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _post(session: Session, n: int, case: CaseRow, bands: list[str]) -> int:
    post = PostRow(
        source="appstore-cn",
        kind="appstore",
        external_id=f"r{n}",
        url=f"https://x/{n}",
        body=f"帖子 {n}",
        content_hash=f"{n:064d}",
        published_at=NOW,
        fetched_at=NOW,
        updated_at=NOW,
        case_id=case.id,
    )
    session.add(post)
    session.flush()
    assert post.id is not None
    session.add_all(MinhashBandRow(band=b, post_id=post.id) for b in bands)
    return post.id


def _case(session: Session, state: str, age_days: float) -> CaseRow:
    at = NOW - timedelta(days=age_days)
    case = CaseRow(severity="P3", state=state, source="appstore-cn", opened_at=at, updated_at=at)
    session.add(case)
    session.flush()
    return case


def test_each_band_offers_its_newest_qualifying_posts_only(engine: Engine) -> None:
    policy = load_settings(env={}).policy
    per_band = NearIndex.PER_BAND
    with Session(engine) as session:
        active, closed = _case(session, "open", 1), _case(session, "resolved", 1)
        stale = _case(session, "open", policy.near_duplicates.window_days + 1)
        crowded: list[int] = []  # qualifying posts of the crowded band, oldest first
        for n in range(per_band + 30):
            # Newer posts in closed and stale cases sit between the qualifying ones: the
            # read must pass over them, not count them.
            crowded.append(_post(session, 3 * n, active, ["crowded", "both"]))
            _post(session, 3 * n + 1, closed, ["crowded"])
            _post(session, 3 * n + 2, stale, ["crowded", "quiet"])
        few = [_post(session, 1000 + n, active, ["quiet"]) for n in range(3)]
        session.commit()
        index = NearIndex(session, policy, NOW, ["crowded", "quiet", "both", "absent"])
        assert index.posts_by_band["crowded"] == set(crowded[-per_band:])
        assert index.posts_by_band["both"] == set(crowded[-per_band:])
        assert index.posts_by_band["quiet"] == set(few)
        assert not index.posts_by_band["absent"]
        assert set(index.case_of.values()) == {active.id}


def test_migration_0011_swaps_the_band_index_for_band_and_post_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    cfg = alembic_config(engine)

    def indexes() -> dict[str, list[str | None]]:
        found = inspect(engine).get_indexes("minhash_bands")
        return {i["name"] or "": i["column_names"] for i in found}

    command.upgrade(cfg, "0010")
    assert indexes().get("ix_minhash_bands_band") == ["band"]
    command.upgrade(cfg, "0011")
    found = indexes()
    assert found.get("ix_minhash_bands_band_post_id") == ["band", "post_id"]
    assert "ix_minhash_bands_band" not in found
    command.downgrade(cfg, "0010")
    found = indexes()
    assert found.get("ix_minhash_bands_band") == ["band"]
    assert "ix_minhash_bands_band_post_id" not in found
    command.upgrade(cfg, "head")
    engine.dispose()

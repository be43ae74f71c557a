"""Migration 0010 gives each delivery a claim token (0 for those queued before), and back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.store.engine import alembic_config, make_engine

NOW = "2026-11-28 02:00:00+00:00"


def test_upgrade_adds_a_claim_token_to_queued_deliveries_and_downgrade_drops_it(
    db_url: str,
) -> None:
    engine: Engine = make_engine(db_url)
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0009")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alerts (id, dedup_key, kind, severity, channel_key, payload, "
                "created_at) VALUES (7, 'case:1:new', 'new_case', 'P1', 'crisis', '{}', :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, alert_id, sink, channel, method, status, attempts, "
                "maybe_sent, next_attempt_at, created_at) VALUES (3, 7, 'slack', '#pr-crisis', "
                "'post', 'pending', 2, true, :now, :now)"
            ),
            {"now": NOW},
        )
    command.upgrade(cfg, "0010")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, attempts, claim_token FROM deliveries")).one()
        assert tuple(row) == (3, 2, 0)
    command.downgrade(cfg, "0009")
    assert "claim_token" not in {c["name"] for c in inspect(engine).get_columns("deliveries")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, attempts FROM deliveries")).all() == [(3, 2)]
    command.upgrade(cfg, "head")
    engine.dispose()

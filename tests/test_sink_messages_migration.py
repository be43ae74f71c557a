"""Migration 0008 carries a case's Slack message over to `sink_messages`, and back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.store.engine import alembic_config, make_engine


def test_upgrade_moves_slack_threads_to_sink_messages_and_downgrade_restores_them(
    db_url: str,
) -> None:
    engine: Engine = make_engine(db_url)
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0007")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cases (id, severity, state, title, source, author, opened_at, "
                "updated_at, escalation_level, slack_channel_name, slack_channel, slack_ts) "
                "VALUES (1, 'P1', 'open', 't', 'appstore-cn', 'a', :now, :now, 0, "
                "'#pr-crisis', 'C0CRISIS01', '1700000000.000100')"
            ),
            {"now": "2026-11-28 02:00:00+00:00"},
        )
        conn.execute(
            text(
                "INSERT INTO alerts (id, dedup_key, kind, case_id, severity, channel_key, "
                "payload, created_at) VALUES (7, 'case:1:new', 'new_case', 1, 'P1', 'crisis', "
                "'{}', :now)"
            ),
            {"now": "2026-11-28 02:00:00+00:00"},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, alert_id, channel, method, case_id, status, "
                "attempts, maybe_sent, next_attempt_at, slack_channel, slack_ts, created_at) "
                "VALUES (3, 7, '#pr-crisis', 'post', 1, 'sent', 1, false, :now, "
                "'C0CRISIS01', '1700000000.000100', :now)"
            ),
            {"now": "2026-11-28 02:00:00+00:00"},
        )
    command.upgrade(cfg, "0008")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT case_id, sink, channel, channel_key, ref, alert_id FROM sink_messages")
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, "slack", "C0CRISIS01", "crisis", "1700000000.000100", 7)
        ]
        delivery = conn.execute(text("SELECT sink, sent_channel, ref FROM deliveries")).one()
        assert tuple(delivery) == ("slack", "C0CRISIS01", "1700000000.000100")
    columns = {c["name"] for c in inspect(engine).get_columns("cases")}
    assert "slack_ts" not in columns and "slack_channel" not in columns
    # One alert may now go to two sinks.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (alert_id, sink, channel, method, status, attempts, "
                "maybe_sent, next_attempt_at, created_at) VALUES (7, 'pr-wecom', 'pr-wecom', "
                "'post', 'pending', 0, false, :now, :now)"
            ),
            {"now": "2026-11-28 02:00:00+00:00"},
        )
    command.downgrade(cfg, "0007")
    with engine.connect() as conn:
        case = conn.execute(text("SELECT slack_channel, slack_ts FROM cases")).one()
        assert tuple(case) == ("C0CRISIS01", "1700000000.000100")
        kept = conn.execute(text("SELECT id, slack_ts FROM deliveries")).all()
        assert [tuple(r) for r in kept] == [(3, "1700000000.000100")]  # Slack's only
    assert "sink_messages" not in inspect(engine).get_table_names()
    engine.dispose()

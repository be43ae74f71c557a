"""sink messages: a case's message per sink, deliveries per sink

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:05:00.000000

The Slack columns on cases (slack_channel_name, slack_channel, slack_ts) become rows of
`sink_messages` for the sink "slack" (the default sink's name); deliveries get the sink's
name (`sink`, "slack" for every row queued before) and keep where it went in
`sent_channel`/`ref`. One alert may now have one delivery per sink.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.store.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite names no constraint: batch mode needs a name to find the old unique one by.
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique(bind: sa.engine.Connection) -> str:
    if bind.dialect.name == "sqlite":
        return "uq_deliveries_alert_id"
    for uq in sa.inspect(bind).get_unique_constraints("deliveries"):
        if uq["column_names"] == ["alert_id"] and uq["name"]:
            return str(uq["name"])
    return "deliveries_alert_id_key"


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "sink_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("channel_key", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("created_at", monitor.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "sink", name="uq_sink_messages_case_sink"),
    )
    with op.batch_alter_table("sink_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sink_messages_case_id"), ["case_id"], unique=False)
    # The case's first message, from the delivery that posted it when there is one.
    bind.execute(
        sa.text(
            "INSERT INTO sink_messages (case_id, sink, channel, channel_key, ref, alert_id, "
            "created_at) SELECT c.id, 'slack', c.slack_channel, "
            "COALESCE((SELECT a.channel_key FROM alerts a WHERE a.case_id = c.id "
            "AND a.kind = 'new_case' ORDER BY a.id LIMIT 1), ''), c.slack_ts, "
            "(SELECT d.alert_id FROM deliveries d WHERE d.slack_ts = c.slack_ts "
            "AND d.slack_channel = c.slack_channel ORDER BY d.id LIMIT 1), c.updated_at "
            "FROM cases c WHERE c.slack_ts IS NOT NULL AND c.slack_channel IS NOT NULL"
        )
    )
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): batch mode would copy `cases`,
    # and dropping the old copy fails while posts and events still refer to it.
    for column in ("slack_ts", "slack_channel", "slack_channel_name"):
        op.drop_column("cases", column)

    with op.batch_alter_table("deliveries", schema=None, naming_convention=_NAMES) as batch_op:
        batch_op.add_column(
            sa.Column("sink", sa.String(length=64), server_default="slack", nullable=False)
        )
        batch_op.add_column(sa.Column("sent_channel", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("ref", sa.String(length=128), nullable=True))
    bind.execute(sa.text("UPDATE deliveries SET sent_channel = slack_channel, ref = slack_ts"))
    old_unique = _old_unique(bind)
    with op.batch_alter_table("deliveries", schema=None, naming_convention=_NAMES) as batch_op:
        batch_op.drop_constraint(old_unique, type_="unique")
        batch_op.drop_column("slack_ts")
        batch_op.drop_column("slack_channel")
        batch_op.create_index(batch_op.f("ix_deliveries_alert_id"), ["alert_id"], unique=False)
        batch_op.create_unique_constraint("uq_deliveries_alert_sink", ["alert_id", "sink"])


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_channel", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("slack_ts", sa.String(length=32), nullable=True))
    # Only the Slack sink's deliveries fit the old one-delivery-per-alert shape.
    bind.execute(sa.text("DELETE FROM deliveries WHERE sink <> 'slack'"))
    bind.execute(
        sa.text(
            "UPDATE deliveries SET slack_channel = substr(sent_channel, 1, 32), "
            "slack_ts = substr(ref, 1, 32)"
        )
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_alert_sink", type_="unique")
        batch_op.drop_index(batch_op.f("ix_deliveries_alert_id"))
        batch_op.drop_column("ref")
        batch_op.drop_column("sent_channel")
        batch_op.drop_column("sink")
        batch_op.create_unique_constraint("uq_deliveries_alert_id", ["alert_id"])
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_channel_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("slack_channel", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("slack_ts", sa.String(length=32), nullable=True))
    bind.execute(
        sa.text(
            "UPDATE cases SET slack_channel = (SELECT substr(m.channel, 1, 32) FROM "
            "sink_messages m WHERE m.case_id = cases.id AND m.sink = 'slack'), "
            "slack_ts = (SELECT substr(m.ref, 1, 32) FROM sink_messages m "
            "WHERE m.case_id = cases.id AND m.sink = 'slack')"
        )
    )
    with op.batch_alter_table("sink_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sink_messages_case_id"))
    op.drop_table("sink_messages")

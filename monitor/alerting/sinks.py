"""Sinks beside Slack's own: the console (no SLACK_BOT_TOKEN), and where to find the rest.

Every sink follows `monitor.domain.Sink`: capability class attributes, `send(out)` and
`find(out)`. `SINK_KINDS` is the registry `monitor.app.make_sinks` builds sinks from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar, TextIO

from monitor.alerting.slack.render import SlackRenderer
from monitor.alerting.slack.sink import SlackSink
from monitor.config import Policy
from monitor.domain import Outgoing, Sink, SinkRef
from monitor.errors import SinkError

__all__ = ["SINK_KINDS", "ConsoleSink", "Sink", "SinkError", "SinkRef", "SlackSink"]

# kind -> "module:Class". Each class has `from_config(sink_cfg, settings, env)`; it is
# imported only when a configured sink has that kind (no robot code loads for Slack).
SINK_KINDS: dict[str, str] = {
    "slack": "monitor.alerting.slack.sink:SlackSink",
    "console": "monitor.alerting.sinks:ConsoleSink",
    "wecom": "monitor.alerting.wecom:WeComSink",
    "dingtalk": "monitor.alerting.dingtalk:DingTalkSink",
    "feishu": "monitor.alerting.feishu:FeishuSink",
}


class ConsoleSink:
    """No SLACK_BOT_TOKEN: print each alert and append it (as Slack would get it) to JSONL."""

    kind: ClassVar[str] = "console"
    threads: ClassVar[bool] = True
    edits: ClassVar[bool] = True
    buttons: ClassVar[bool] = True
    files: ClassVar[bool] = True
    mentions: ClassVar[bool] = True
    lookup: ClassVar[bool] = True  # the JSONL file is read back
    max_bytes: ClassVar[int] = 1_000_000
    rate_per_minute: ClassVar[int] = 6000
    rate_source: ClassVar[str] = "local file: no limit"

    def __init__(
        self,
        jsonl: Path,
        stream: TextIO | None = None,
        policy: Policy | None = None,
        name: str = "console",
    ) -> None:
        self.jsonl = jsonl
        self.stream = stream or sys.stdout
        self.name = name
        self.renderer = SlackRenderer(policy)

    def send(self, out: Outgoing) -> SinkRef:
        message = self.renderer.render(out)
        channel = out.channel
        if out.method == "update" and out.thread is not None:
            message = {**message, "update_of": out.thread.ref}
            return self._write(out.thread.channel, message, alert_id=0)
        if out.method == "reply" and out.thread is not None:
            channel, message = out.thread.channel, {**message, "thread_ts": out.thread.ref}
        if out.method == "file":
            message = {"text": message.get("text", ""), "file": out.notice.file or ""}
        return self._write(channel, message, out.alert_id)

    def _write(self, channel: str, message: dict[str, object], alert_id: int) -> SinkRef:
        ts = f"console-{alert_id}"
        record = {"alert_id": alert_id, "channel": channel, "ts": ts, **message}
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with self.jsonl.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        where = (
            "edit" if "update_of" in message else ("thread" if "thread_ts" in message else "alert")
        )
        print(f"[{where} → {channel}] {message.get('text', '')}", file=self.stream)
        return SinkRef(channel=channel, ref=ts)

    def find(self, out: Outgoing) -> SinkRef | None:
        if out.method == "update" or not self.jsonl.exists():
            return None
        with self.jsonl.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if record.get("alert_id") == out.alert_id:
                    return SinkRef(channel=str(record["channel"]), ref=str(record["ts"]))
        return None

"""Socket Mode: the same interactions over Slack's outbound WebSocket, for hosts without
a public URL. Slack authenticates the connection (app-level token), so no signing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from monitor.web.interactions import Interactions
from monitor.web.payloads import BadPayload

log = logging.getLogger(__name__)


def make_listener(
    interactions: Interactions, after_action: Callable[[], object] | None = None
) -> Callable[[BaseSocketModeClient, SocketModeRequest], None]:
    def listener(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        payload: dict[str, Any] = dict(request.payload or {})
        try:
            if request.type == "interactive":
                body = interactions.handle_payload(payload)
            elif request.type == "slash_commands":
                body = interactions.command({k: str(v) for k, v in payload.items()})
            else:
                body = {}
        except BadPayload as exc:
            # Still acknowledged, or Slack retries the same malformed payload.
            log.warning("socket mode payload refused: %s", exc.reason)
            body = {}
        # Acknowledge within 3 seconds, with the answer as the ack's payload.
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=body or None)
        )
        if after_action is not None:
            after_action()

    return listener


def serve_socket_mode(
    app_token: str, interactions: Interactions, after_action: Callable[[], object] | None
) -> None:
    client = SocketModeClient(app_token=app_token, web_client=interactions.slack)
    client.socket_mode_request_listeners.append(make_listener(interactions, after_action))
    client.connect()
    log.info("socket mode connected")
    threading.Event().wait()

"""An ASGI middleware that refuses request bodies over ``max_bytes`` with 413.

It checks ``Content-Length`` first and then counts the bytes actually received (a chunked
body has no length), so a client cannot make the server buffer more than the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Wraps an ASGI app; bodies larger than ``max_bytes`` get 413 and a JSON explanation."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside FastAPI's body reading, which re-raises HTTPException.
                    raise HTTPException(413, self._message(received))
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return (f"request body: {size} bytes or more is larger than the limit of "
                f"{self.max_bytes} bytes; send fewer contexts per call, or raise "
                f"serving.max_body_bytes in parity.yaml")

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps({"detail": self._message(size)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

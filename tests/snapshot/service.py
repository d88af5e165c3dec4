"""A programmable live service on loopback for the snapshot tests (a helper, not a test module).

``GET /recs/<customer_id>`` answers ``{"top_item": "i<id>", "score": <id>/10,
"items": [{"item": ..., "score": ...}, ...]}``. ``Faults`` changes the answer per customer:
a delay, a list of status codes to answer first (``[503, 503]`` then success), malformed JSON,
or a changed schema. Every request is counted per customer.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    delay_s: dict[int, float] = field(default_factory=dict)
    statuses: dict[int, list[int]] = field(default_factory=dict)
    malformed: set[int] = field(default_factory=set)
    schema_change: set[int] = field(default_factory=set)
    default_delay_s: float = 0.0
    generation: int = 0  # added to every score: the service's answers change over time


def answer(customer: int, generation: int = 0) -> dict[str, Any]:
    """The service's valid answer for a customer."""
    return {
        "top_item": f"i{customer}",
        "score": customer / 10 + generation,
        "items": [{"item": f"i{customer}", "score": customer / 10},
                  {"item": f"j{customer}", "score": 1.0}],
    }


class LiveService:
    """The server, its faults and its request counts; ``url`` is the source's URL template."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.calls: Counter[int] = Counter()
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # the context as a JSON body
                length = int(self.headers["Content-Length"])
                context = json.loads(self.rfile.read(length))
                self.path = f"/recs/{context['customer_id']}"
                self.do_GET()

            def do_GET(self) -> None:
                customer = int(self.path.rsplit("/", 1)[1])
                with service.lock:
                    service.calls[customer] += 1
                    queued = service.faults.statuses.get(customer, [])
                    status = queued.pop(0) if queued else 200
                time.sleep(service.faults.delay_s.get(customer, service.faults.default_delay_s))
                if status != 200:
                    body = b'{"error": "busy"}'
                elif customer in service.faults.malformed:
                    body = b'{"top_item": "i1", "score": '
                elif customer in service.faults.schema_change:
                    body = json.dumps({**answer(customer), "score": "high"}).encode()
                else:
                    body = json.dumps(answer(customer, service.faults.generation)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # the client may have timed out

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/recs/{{customer_id}}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

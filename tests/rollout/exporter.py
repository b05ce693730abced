"""A Prometheus-text /metrics endpoint per version, with counters that grow in real time.

``slow=True`` puts the version's requests in a slower latency bucket (its p99
roughly doubles): the canary to roll back. Runs in a thread so a CLI subprocess
can scrape it while the test waits.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)


def exposition(elapsed: float, *, slow: bool, rate: float = 200.0) -> str:
    total = rate * elapsed
    landing = 0.5 if slow else 0.25  # every request lands in this bucket
    lines = [
        "# TYPE http_requests_total counter",
        f'http_requests_total{{code="200"}} {total}',
        "# TYPE http_request_duration_seconds histogram",
    ]
    for le in BUCKETS:
        lines.append(f'http_request_duration_seconds_bucket{{le="{le}"}} {total if le >= landing else 0.0}')
    lines += [
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {total}',
        f"http_request_duration_seconds_count {total}",
        f"http_request_duration_seconds_sum {total * landing * 0.8}",
    ]
    return "\n".join(lines) + "\n"


class Exporter:
    def __init__(self, *, slow: bool = False) -> None:
        self.slow = slow
        self.started = time.monotonic()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = exposition(time.monotonic() - outer.started, slow=outer.slow).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

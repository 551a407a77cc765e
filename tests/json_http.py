"""A JSON API server in a thread of the test process, for the stand-ins of cloud services.

The stand-ins (tests/vertex_standin.py, tests/monitoring_standin.py) decide what a request
means; this module only carries it: method, path and body in, status and JSON body out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``(method, path, raw body) -> (status, JSON body)``
Handle = Callable[[str, str, bytes], tuple[int, Any]]


class JsonHttpServer:
    """Serve ``handle`` on 127.0.0.1:<port> (HTTP/1.1, a thread per request) until :meth:`stop`.

    Attributes:
        url: ``http://127.0.0.1:<port>``.
    """

    def __init__(self, port: int, handle: Handle) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = handle(self.command, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()

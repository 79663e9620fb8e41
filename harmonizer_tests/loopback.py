"""Servers on loopback that tests talk to for real."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """Requests an HTTP server on loopback received: (path, content type, JSON body)."""

    def __init__(self):
        self.received: list[tuple[str, str, dict]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                status = 500 if self.path == "/broken" else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def on(self, path: str) -> list[dict]:
        return [body for p, _, body in self.received if p == path]

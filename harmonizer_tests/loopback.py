"""Servers on loopback that tests talk to for real."""

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(server: socketserver.BaseServer) -> None:
    server.serve_forever(poll_interval=0.05)  # shutdown() waits up to one poll interval


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
        self.thread = threading.Thread(target=serve, args=(self.server,), daemon=True)

    def on(self, path: str) -> list[dict]:
        return [body for p, _, body in self.received if p == path]


class Listener:
    """A TCP server on loopback that sends `greeting` to each connection (with none it never
    answers), then reads and discards until the client hangs up. Counts the connections."""

    def __init__(self, greeting: bytes = b""):
        self.connections = 0
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                listener.connections += 1
                try:
                    self.request.sendall(greeting)
                    while self.request.recv(65536):
                        pass
                except ConnectionError:  # the client hung up first
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a connection the client left open does not hold up server_close
        self.port = self.server.server_address[1]
        threading.Thread(target=serve, args=(self.server,), daemon=True).start()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

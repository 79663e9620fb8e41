"""Servers on loopback that tests talk to for real."""

import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(server: socketserver.BaseServer) -> None:
    server.serve_forever(poll_interval=0.05)  # shutdown() waits up to one poll interval


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """Requests an HTTP server on loopback received: (path, content type, JSON body). It answers
    /broken with HTTP 500, and /slow after SLOW seconds."""

    SLOW = 0.4

    def __init__(self):
        self.received: list[tuple[str, str, dict]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                if self.path == "/slow":
                    time.sleep(inbox.SLOW)
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
    answers), then converses until the client hangs up: here it reads and discards. Counts the
    connections."""

    def __init__(self, greeting: bytes = b""):
        self.connections = 0
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                listener.connections += 1
                try:
                    self.request.sendall(greeting)
                    listener.converse(self.request)
                except ConnectionError:  # the client hung up first
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a connection the client left open does not hold up server_close
        self.port = self.server.server_address[1]
        threading.Thread(target=serve, args=(self.server,), daemon=True).start()

    def converse(self, connection: socket.socket) -> None:
        while connection.recv(65536):
            pass

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlowSMTP(Listener):
    """Speaks just enough SMTP for smtplib to send a message, answering each command (and the
    end of the message) `delay` seconds after it arrived: each answer within a timeout longer than
    `delay`, the exchange (greeting, EHLO, MAIL, RCPT, DATA, the message, QUIT) six times longer."""

    def __init__(self, delay: float):
        self.delay = delay
        super().__init__(b"220 slow.example ESMTP\r\n")

    def converse(self, connection: socket.socket) -> None:
        in_message = False
        for line in connection.makefile("rb"):
            if in_message and line != b".\r\n":
                continue
            time.sleep(self.delay)
            command = line[:4].upper()
            answer = b"354 go on" if command == b"DATA" and not in_message else b"221 bye" if command == b"QUIT" else b"250 ok"
            connection.sendall(answer + b"\r\n")
            in_message = answer.startswith(b"354")


class SlowHTTP(Listener):
    """Reads a request, then sends a 200 answer a byte every `delay` seconds: each byte within a
    timeout longer than `delay`, the whole answer dozens of times longer."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    def __init__(self, delay: float):
        self.delay = delay
        super().__init__()

    def converse(self, connection: socket.socket) -> None:
        connection.recv(65536)  # the request line, headers and the small JSON body
        for byte in self.ANSWER:
            time.sleep(self.delay)
            connection.sendall(bytes([byte]))

"""A chat model on loopback that answers from a script: OpenAI's `POST /v1/chat/completions` and
Anthropic's `POST /v1/messages`, each request taking the next step of the script."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harmonizer_tests.loopback import serve


@dataclass(frozen=True)
class Status:
    """An HTTP error answer in the error shape of the API asked, saying `message` (by default
    "loopback answered <code>"); `retry_after` the Retry-After header if any."""

    code: int
    retry_after: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Garbage:
    """A 200 answer with this body, whatever the API asked (JSON with no reply in it, or not JSON at all)."""

    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    """No answer for `seconds` (or until the server closes), then the connection is dropped."""

    seconds: float


# A str step is a fair reply with that text.
Step = str | Status | Garbage | Hang


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict


class ModelServer:
    """Answers each request with the next step of `script` (assign a new list to replace it); with
    no step left, HTTP 400 (which the SDKs do not retry). `requests` holds every request received,
    in order. `base_url` is the OpenAI SDK's (`/v1` included), `root_url` the Anthropic SDK's."""

    def __init__(self, script: Iterable[Step] = ()):
        self.script: list[Step] = list(script)
        self.requests: list[Request] = []
        self.closing = threading.Event()
        model_server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model_server.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path not in ("/v1/messages", "/v1/chat/completions"):
                    return self.answer(404, b"{}")
                anthropic = self.path == "/v1/messages"
                step = model_server.script.pop(0) if model_server.script else Status(400, message="the script has no step left")
                if isinstance(step, str):
                    self.answer(200, json.dumps(_anthropic_reply(body, step) if anthropic else _openai_reply(body, step)).encode())
                elif isinstance(step, Status):
                    message = step.message or f"loopback answered {step.code}"
                    error = _anthropic_error(message) if anthropic else _openai_error(message)
                    self.answer(step.code, json.dumps(error).encode(), {"Retry-After": step.retry_after} if step.retry_after else {})
                elif isinstance(step, Garbage):
                    self.answer(200, step.body, {"Content-Type": step.content_type})
                else:
                    model_server.closing.wait(step.seconds)
                    self.close_connection = True

            def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.base_url = f"{self.root_url}/v1"

    def __enter__(self) -> ModelServer:
        threading.Thread(target=serve, args=(self.server,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()  # a hanging answer ends now
        self.server.shutdown()
        self.server.server_close()


def _openai_reply(request: dict, text: str) -> dict:
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _anthropic_reply(request: dict, text: str) -> dict:
    return {
        "id": "msg_loopback",
        "type": "message",
        "role": "assistant",
        "model": request.get("model"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _openai_error(message: str) -> dict:
    return {"error": {"message": message, "type": "loopback_error", "code": None}}


def _anthropic_error(message: str) -> dict:
    return {"type": "error", "error": {"type": "loopback_error", "message": message}}

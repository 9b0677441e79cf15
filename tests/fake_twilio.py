"""A local stand-in for Twilio's REST API (Messages and Calls), spoken to by the real
``twilio`` client over real HTTP. It records every request and answers like Twilio:
201 with a resource, or a programmed error in Twilio's error format."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

TWILIO_API = "https://api.twilio.com"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, list[str]]
    auth: tuple[str, str] | None
    headers: dict[str, str]

    def one(self, name: str) -> str:
        [value] = self.params[name]
        return value


@dataclass(frozen=True)
class FakeError:
    status: int
    code: int | None = None
    message: str = "fake error"


@dataclass
class FakeTwilio:
    account_sid: str
    auth_token: str
    requests: list[RecordedRequest] = field(default_factory=list)
    errors: deque[FakeError] = field(default_factory=deque)
    created: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, status: int, code: int | None = None, message: str = "fake error") -> None:
        """The next create request is answered with this error instead of a resource."""
        self.errors.append(FakeError(status, code, message))

    def http_client(self) -> LocalTwilioHttpClient:
        return LocalTwilioHttpClient(self.url)

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        self.requests.append(request)
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/"
        if request.auth != (self.account_sid, self.auth_token):
            return 401, _error(401, 20003, "Authenticate")
        if self.errors:
            error = self.errors.popleft()
            return error.status, _error(error.status, error.code, error.message)
        if request.method == "POST" and request.path == prefix + "Messages.json":
            resource = {
                "sid": "SM" + uuid.uuid4().hex,
                "account_sid": self.account_sid,
                "to": request.one("To"),
                "from": request.one("From"),
                "body": request.one("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
            }
        elif request.method == "POST" and request.path == prefix + "Calls.json":
            resource = {
                "sid": "CA" + uuid.uuid4().hex,
                "account_sid": self.account_sid,
                "to": request.one("To"),
                "from": request.one("From"),
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
            }
        else:
            return 404, _error(404, 20404, f"The requested resource {request.path} was not found")
        self.created.append(resource)
        return 201, resource


def _error(status: int, code: int | None, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if code is not None:
        body["code"] = code
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return body


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = self.rfile.read(length).decode("utf-8")
            auth = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                auth = (user, password)
            request = RecordedRequest(
                method="POST",
                path=self.path,
                params=parse_qs(form, keep_blank_values=True),
                auth=auth,
                headers=dict(self.headers.items()),
            )
            status, body = fake.answer(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler


class LocalTwilioHttpClient(TwilioHttpClient):
    """The twilio library's own HTTP client, with only the host swapped for the fake's."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if not url.startswith(TWILIO_API + "/"):
            raise AssertionError(f"the client called {url}, not Twilio's API")
        return super().request(method, self.base_url + url[len(TWILIO_API) :], *args, **kwargs)

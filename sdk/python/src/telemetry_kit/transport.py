"""One signed POST to the ingest endpoint, and what its answer means for the events sent."""

from __future__ import annotations

import enum
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException

from telemetry_kit.retry import retry_after_parse
from telemetry_kit.signing import signed_headers

# Answers that say "not now": the server (or what stands before it) is busy or down. Retried without
# limit, the offline queue keeping the events meanwhile.
_UNAVAILABLE = {408, 425, 429, 502, 503, 504}
# The whole batch was refused as malformed or too large: smaller batches find the culprit.
_BATCH_REFUSED = {400, 413}
_MAX_ANSWER_BYTES = 1 << 20


class Verdict(enum.Enum):
    DELIVERED = "delivered"  # 200/207 with a batch result: every event is either stored or rejected
    REJECTED = "rejected"  # 422: every event rejected as invalid
    BATCH_REFUSED = "batch_refused"  # 400/413: the batch as a whole
    UNAVAILABLE = "unavailable"  # connection error, 429, 502/503/504: retry, no limit
    FAILED = "failed"  # 500 or an answer that makes no sense: retry a limited number of times
    MISCONFIGURED = "misconfigured"  # 401/403/404, redirects: keep the events, retry rarely


@dataclass
class Answer:
    verdict: Verdict
    status: int | None
    message: str
    code: str = ""  # the server's machine code, else "http_<status>", "unreachable" or "connection_lost"
    accepted: int = 0
    errors: list[dict] = field(default_factory=list)  # the server's per-event errors, each with "index"
    retry_after: float | None = None

    def describe(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status} {self.code}: {self.message}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without its body: report the redirect instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def batch_post(*, url: str, secret: str, token: str | None, body: bytes, batch_size: int, timeout: float) -> Answer:
    """Sends one batch; never raises for anything the network or the server does."""
    try:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers=signed_headers(secret=secret, token=token, body=body, batch_size=batch_size),
        )
        with _opener.open(request, timeout=timeout) as response:
            return answer_read(response.status, response.headers, response.read(_MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as error:
        with error:
            try:
                raw = error.read(_MAX_ANSWER_BYTES)
            except (OSError, HTTPException):
                raw = b""  # the status is what counts
            return answer_read(error.code, error.headers, raw)
    except (OSError, HTTPException) as error:  # URLError and timeouts are OSErrors
        reason = getattr(error, "reason", error)
        # A connection cut while the body is sent is also how a server refuses a body over its size
        # limit without reading it: the client retries in smaller batches.
        lost = isinstance(reason, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError))
        return Answer(
            Verdict.UNAVAILABLE,
            None,
            f"cannot reach {url}: {reason}",
            code="connection_lost" if lost else "unreachable",
        )
    except ValueError as error:  # not an http(s) URL
        return Answer(Verdict.MISCONFIGURED, None, f"cannot send to {url!r}: {error}", code="bad_endpoint")


def answer_read(status: int, headers, raw: bytes) -> Answer:
    """What an HTTP answer means for the batch (docs/protocols.md#signed-batches): delivered only on 200 or 207
    carrying a batch result."""
    retry_after = retry_after_parse(headers.get("Retry-After")) if headers is not None else None
    body = _json_object(raw)
    code, message = _code_and_message(body, status)
    if status in (200, 207):
        if body.get("status") in ("success", "partial") and isinstance(body.get("accepted"), int):
            return Answer(Verdict.DELIVERED, status, message, code, accepted=body["accepted"], errors=_errors(body))
        return Answer(Verdict.FAILED, status, f"HTTP {status} without a batch result", code)
    if status == 422 and body.get("status") == "rejected":
        return Answer(Verdict.REJECTED, status, message, code, errors=_errors(body))
    if status in _BATCH_REFUSED or status == 422:
        return Answer(Verdict.BATCH_REFUSED, status, message, code)
    if status in _UNAVAILABLE:
        return Answer(Verdict.UNAVAILABLE, status, message, code, retry_after=retry_after)
    if status >= 500:
        return Answer(Verdict.FAILED, status, message, code, retry_after=retry_after)
    return Answer(Verdict.MISCONFIGURED, status, message, code, retry_after=retry_after)


def _json_object(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _code_and_message(body: dict, status: int) -> tuple[str, str]:
    error = body.get("error")
    if isinstance(error, dict):  # {"error": {"code", "message"}}
        code, message = error.get("code"), error.get("message")
    else:  # the 0.3 server's flat {"error", "message"}, or a batch result
        code, message = error, body.get("message")
    return (
        code if isinstance(code, str) and code else f"http_{status}",
        message if isinstance(message, str) and message else f"HTTP {status}",
    )


def _errors(body: dict) -> list[dict]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    return [error for error in errors if isinstance(error, dict) and isinstance(error.get("index"), int)]

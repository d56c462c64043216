"""The async streaming transport the load generator drives.

It stamps each network read with ``perf_counter`` as it arrives and hands the
parsed events to a dialect; parsing happens after the stamp, so a slow parse
delays later chunks' stamps but never moves an earlier one. Events that arrive in
one read share its stamp: nothing in the client can tell them apart. Failures
(HTTP errors, dropped connections, timeouts, bad JSON) are recorded on the
request, never raised: a load run must account for every request it sent.

Its per-request and per-chunk costs bound what a load run can measure, so it runs
on ``client.http1``, a bare asyncio HTTP/1.1 client that parses each read inside
the socket callback (httpx cost about 100 us per read, several times a bare
client's; ``benchmarks/client_ceiling.py`` reports the ceiling). Like that
module, it ignores proxy environment variables: a load test measures the server.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pytest_llmserve.client.dialects import Dialect, Prompt
from pytest_llmserve.client.http1 import BodyCallback, HTTP1Pool, HTTPError
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.load.records import RequestRecord

ERROR_BODY_BYTES = 4096  # enough for the 500 characters a record keeps


class StreamingClient:
    """One connection pool against one server, for one served model."""

    def __init__(
        self,
        base_url: str,
        model: str,
        dialect: Dialect,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 1024,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``headers`` go with every request (an endpoint's auth header); ``api_key``, when
        given, becomes its ``Authorization: Bearer`` header."""
        self.model = model
        self.dialect = dialect
        self.max_connections = max_connections
        sent = dict(headers or {})
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._pool = HTTP1Pool(base_url, sent, timeout_s, max_connections)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def preconnect(self, n: int) -> None:
        """Have ``n`` connections open and idle (best effort: a request that finds none
        connects, and fails, on its own; never more than 10 s)."""
        await self._pool.preconnect(n)

    async def send(self, prompt: Prompt, record: RequestRecord) -> RequestRecord:
        """Stream one request into ``record`` (its ``sent_at`` is stamped here)."""
        path, body = self.dialect.request(self.model, prompt)
        stream = _Stream(record, self.dialect)
        record.sent_at = time.perf_counter()
        try:
            await self._pool.post(path, _json_bytes(body), stream)
        except (HTTPError, json.JSONDecodeError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            return record
        if stream.error_body is not None:
            text = stream.error_body.decode("utf-8", errors="replace")
            record.error = f"HTTP {record.status}: {text[:500]}"
        return record


def _json_bytes(body: dict[str, Any]) -> bytes:
    """The body as httpx's ``json=`` encoded it: compact, UTF-8, no NaN."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _Stream:
    """One response's handler: SSE events into the record, or an error body kept aside."""

    __slots__ = ("_apply", "_feed", "error_body", "record")

    def __init__(self, record: RequestRecord, dialect: Dialect) -> None:
        self.record = record
        self._apply = dialect.apply
        self._feed = SSEParser().feed
        self.error_body: bytearray | None = None

    def head(self, status: int, at: float) -> BodyCallback:
        self.record.status = status
        self.record.last_byte_at = at
        if status == 200:
            return self._events
        self.error_body = bytearray()
        return self._error

    def _events(self, data: bytes, at: float) -> None:
        # Called for every network read of every stream: locals, no attribute chains.
        record = self.record
        record.last_byte_at = at
        if data:
            apply, loads = self._apply, json.loads
            for event in self._feed(data):
                if event.data != "[DONE]":
                    apply(loads(event.data), record, at)

    def _error(self, data: bytes, at: float) -> None:
        self.record.last_byte_at = at
        assert self.error_body is not None
        if len(self.error_body) < ERROR_BODY_BYTES:
            self.error_body += data[: ERROR_BODY_BYTES - len(self.error_body)]

"""The async streaming transport the load generator drives.

It stamps each network read with ``perf_counter`` as it arrives and hands the
parsed events to a dialect; parsing happens after the stamp, so a slow parse
delays later chunks' stamps but never moves an earlier one. Failures (HTTP errors,
dropped connections, timeouts) are recorded on the request, never raised: a load
run must account for every request it sent.

Its per-request and per-chunk costs bound what a load run can measure, so the hot
path is kept lean (``benchmarks/client_ceiling.py`` reports its ceiling): the
request URL is merged with ``base_url`` once per path rather than re-parsed by
httpx on every request, and the read loop binds what it calls to locals.
"""

from __future__ import annotations

import json
import time

import httpx

from pytest_llmserve.client.dialects import Dialect, Prompt
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.load.records import RequestRecord


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
    ) -> None:
        self.model = model
        self.dialect = dialect
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=None)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout_s, limits=limits
        )
        self._urls: dict[str, httpx.URL] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, prompt: Prompt, record: RequestRecord) -> RequestRecord:
        """Stream one request into ``record`` (its ``sent_at`` is stamped here)."""
        path, body = self.dialect.request(self.model, prompt)
        url = self._urls.get(path)
        if url is None:
            url = self._url(path)
        feed, apply, loads = SSEParser().feed, self.dialect.apply, json.loads
        clock = time.perf_counter
        record.sent_at = clock()
        try:
            async with self._http.stream("POST", url, json=body) as response:
                record.status = response.status_code
                if response.status_code != 200:
                    text = (await response.aread()).decode("utf-8", errors="replace")
                    record.error = f"HTTP {response.status_code}: {text[:500]}"
                    record.last_byte_at = clock()
                    return record
                async for chunk in response.aiter_bytes():
                    at = clock()
                    record.last_byte_at = at
                    for event in feed(chunk):
                        if event.data != "[DONE]":
                            apply(loads(event.data), record, at)
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        return record

    def _url(self, path: str) -> httpx.URL:
        """``path`` merged with ``base_url`` exactly as httpx merges it, computed once.

        Passing httpx an absolute ``URL`` skips its per-request URL parsing and
        merging, which cost about a fifth of the client's time to first token.
        """
        url = self._http.build_request("POST", path).url
        self._urls[path] = url
        return url

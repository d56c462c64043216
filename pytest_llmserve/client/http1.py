"""A lean HTTP/1.1 client for streamed POSTs: the load generator's transport.

httpx spent 80-115 us of CPU on every network read of a streamed response (anyio
streams, httpcore's state machines, h11), which capped the load generator below
what a CPU-served model streams at high concurrency and added about a millisecond
to every TTFT it measured. This module does the one thing a load run needs, on a
bare ``asyncio.Protocol``: send a POST with a JSON body over a kept-alive
connection, parse the status line and headers, and hand each network read's body
bytes (chunked or ``Content-Length`` framing, or until close) to a callback in
the same ``data_received`` call that stamped it with ``perf_counter``: no task
wake-up, no queue, no copy between the socket and the parser.

Deliberate limits, because a load test talks straight to the server under test:

- ``https://`` is supported with ``ssl.create_default_context()`` (system CAs and
  ``SSL_CERT_FILE``), no client certificates;
- proxy environment variables (``HTTP_PROXY``...) are ignored: a proxy between
  the load generator and the server would be measured as the server;
- no redirects, no compression (``Accept-Encoding`` is not sent), no pipelining;
  header lines must end with CRLF (every HTTP server we target does so).

Errors are raised as ``HTTPError`` subclasses named like httpx's, so records read
the same as before; the caller (``client.aio``) records them on the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from pytest_llmserve import __version__

BodyCallback = Callable[[bytes, float], None]

MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE = 4096
# Left in the chunked decoder: bytes of chunk data still due, or one of these states.
_SIZE, _DATA_END, _TRAILER = 0, -1, -2


class ResponseHandler(Protocol):
    def head(self, status: int, at: float) -> BodyCallback:
        """The status arrived (read at ``at``); return what takes each read's body bytes.

        The callback is called once per network read, with the body bytes that read
        carried (``b""`` when it carried only framing), in the loop's I/O callback: an
        exception it raises aborts the response and is raised by ``HTTP1Pool.post``.
        """
        ...


class HTTPError(Exception):
    """Anything that stopped a response short of its end."""


class ConnectError(HTTPError):
    pass


class ConnectTimeout(HTTPError):
    pass


class ReadTimeout(HTTPError):
    pass


class RemoteProtocolError(HTTPError):
    """The server broke HTTP/1.1, or closed the connection before the response ended."""


class _Stale(HTTPError):
    """A reused connection was closed by the server before any byte of the response."""


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; at most one request in flight on it."""

    def __init__(self, pool: HTTP1Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False  # a response has been read on it before
        self._done: asyncio.Future[bool] | None = None  # result: the connection may be reused
        self._handler: ResponseHandler | None = None
        self._body: BodyCallback | None = None  # set once the head is parsed
        self._buf = b""  # head bytes, or an incomplete chunk-size line / chunk end
        self._got_bytes = False
        self._left = 0  # chunked: see _SIZE...; Content-Length: bytes due; -1: until close
        self._chunked = False
        self._keep_alive = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if self._done is None or self._done.done():
            return
        why = f": {exc}" if exc else ""
        if self._body is not None and not self._chunked and self._left == -1:
            self._finish(False)  # a body delimited by the end of the connection
        elif not self._got_bytes and self.reused:
            self._fail(_Stale("the server had closed the kept-alive connection" + why))
        elif not self._got_bytes:
            self._fail(RemoteProtocolError("server disconnected without a response" + why))
        else:
            self._fail(RemoteProtocolError("server closed the connection mid-response" + why))

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        self._last_read = at
        if self._done is None or self._done.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._got_bytes = True
        try:
            body = self._body
            if body is None:
                rest = self._parse_head(data, at)
                body = self._body
                if body is None or rest is None:
                    return
                data = rest
            if self._chunked:
                data, complete = self._dechunk(data)
            elif self._left >= 0:
                if len(data) >= self._left:
                    data, extra = data[: self._left], data[self._left :]
                    self._keep_alive = self._keep_alive and not extra
                self._left -= len(data)
                complete = self._left == 0
            else:
                complete = False
            body(data, at)
            if complete:
                self._finish(self._keep_alive)
        except Exception as exc:  # the handler's or a protocol error: this response is over
            self._fail(exc)

    # --- one exchange ---------------------------------------------------------------

    async def exchange(self, raw: bytes, handler: ResponseHandler, timeout_s: float) -> bool:
        """Send ``raw`` and feed the response to ``handler``; True if reusable after."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._done = done
        self._handler, self._body, self._buf, self._got_bytes = handler, None, b"", False
        self._last_read = time.perf_counter()
        self._timer = loop.call_later(timeout_s, self._check_idle, timeout_s)
        if self.closed or self._transport.is_closing():
            self.connection_lost(None)
        else:
            self._transport.write(raw)
        try:
            return await done
        finally:
            self._timer.cancel()
            self._handler = self._body = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _check_idle(self, timeout_s: float) -> None:
        """Fail after ``timeout_s`` without a read, re-arming only when one came.

        One timer per request rather than one per read: re-arming on every read
        would cost a timer object and a heap operation per chunk.
        """
        if self._done is None or self._done.done():
            return
        remaining = self._last_read + timeout_s - time.perf_counter()
        if remaining > 1e-3:
            self._timer = asyncio.get_running_loop().call_later(
                remaining, self._check_idle, timeout_s
            )
        else:
            self._fail(ReadTimeout(f"no data for {timeout_s:g} s"))

    def _finish(self, reusable: bool) -> None:
        assert self._done is not None
        self.reused = True
        self._done.set_result(reusable and not self.closed)

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    # --- parsing ----------------------------------------------------------------------

    def _parse_head(self, data: bytes, at: float) -> bytes | None:
        """Consume head bytes; the body bytes after the head, or None until it is whole."""
        buf = self._buf + data if self._buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise RemoteProtocolError(f"response head over {MAX_HEAD_BYTES} bytes")
                self._buf = buf
                return None
            lines = buf[:end].decode("latin-1").split("\r\n")
            buf = buf[end + 4 :]
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                continue  # informational (100 Continue...): the real response follows
            break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self._keep_alive = (
            "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        )
        self._chunked = False
        if status in (204, 304):
            self._left = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked, self._left = True, _SIZE
        elif "content-length" in headers:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                raise RemoteProtocolError("bad Content-Length") from None
            if self._left < 0:
                raise RemoteProtocolError("bad Content-Length")
        else:
            self._left, self._keep_alive = -1, False
        self._buf = b""
        assert self._handler is not None
        self._body = self._handler.head(status, at)
        return buf

    def _dechunk(self, data: bytes) -> tuple[bytes, bool]:
        """Decode chunked framing: (the body bytes in ``data``, whether the body ended)."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, n, left = 0, len(buf), self._left
        complete = False
        while pos < n:
            if left > 0:
                end = pos + left
                if end <= n:
                    out.append(buf[pos:end])
                    pos, left = end, _DATA_END
                else:
                    out.append(buf[pos:])
                    left -= n - pos
                    pos = n
            elif left == _DATA_END:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                pos, left = pos + 2, _SIZE
            else:  # a chunk-size line, or a trailer line after the last chunk
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > MAX_CHUNK_LINE:
                        raise RemoteProtocolError("chunk-size line too long")
                    break
                if left == _TRAILER:
                    if eol == pos:  # the empty line that ends the body
                        pos, complete = eol + 2, True
                        break
                    pos = eol + 2
                    continue
                size_hex = buf[pos:eol].split(b";", 1)[0].strip()
                try:
                    size = int(size_hex, 16)
                except ValueError:
                    size = -1
                if size < 0 or not size_hex.isalnum():
                    raise RemoteProtocolError(f"bad chunk size {bytes(size_hex[:20])!r}")
                pos, left = eol + 2, size if size else _TRAILER
        self._left = left
        if complete and pos < n:
            self._keep_alive = False  # bytes after the response: never reuse
        self._buf = buf[pos:] if pos < n and not complete else b""
        if not out:
            return b"", complete
        return (out[0] if len(out) == 1 else b"".join(out)), complete


class HTTP1Pool:
    """Kept-alive connections to one server, at most ``max_connections`` open at once."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 1024,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._max_connections = max_connections
        self._idle: list[Connection] = []  # most recently used last: reused first
        self._open: set[Connection] = set()
        fields = {
            "Host": url.netloc.rpartition("@")[2],
            "User-Agent": f"pytest-llmserve/{__version__}",
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        self._fields = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self._heads: dict[str, bytes] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def post(self, path: str, body: bytes, handler: ResponseHandler) -> None:
        """POST ``body`` (JSON) to ``path`` and stream the response into ``handler``.

        Waits for a free connection when ``max_connections`` are busy. A kept-alive
        connection that turns out closed before any response byte is replaced by a
        fresh one once, as a browser or httpx does: the server closed it while idle,
        so the request never reached it.
        """
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = (
                f"POST {self._prefix}{path} HTTP/1.1\r\n{self._fields}Content-Length: "
            ).encode("latin-1")
        raw = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        async with self._slots:
            conn = self._take_idle()
            if conn is not None:
                try:
                    await self._exchange(conn, raw, handler)
                    return
                except _Stale:
                    pass
            await self._exchange(await self._connect(), raw, handler)

    async def preconnect(self, n: int, timeout_s: float = 10.0) -> None:
        """Open connections until ``n`` are open (at most ``max_connections``), all idle.

        Best effort, and never longer than ``timeout_s``: a server that cannot take a
        connection now is found out by the requests, which report it.
        """
        wanted = min(n, self._max_connections) - len(self._open)

        async def connect() -> Connection:
            async with asyncio.timeout(timeout_s):
                return await self._connect()

        if wanted > 0:
            opened = await asyncio.gather(*(connect() for _ in range(wanted)),
                                          return_exceptions=True)  # fmt: skip
            self._idle.extend(c for c in opened if isinstance(c, Connection))

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    async def _exchange(self, conn: Connection, raw: bytes, handler: ResponseHandler) -> None:
        reusable = False
        try:
            reusable = await conn.exchange(raw, handler, self._timeout_s)
        finally:
            if reusable and not conn.closed:
                self._idle.append(conn)
            else:  # not read to its end (error, cancellation) or not kept alive
                conn.close()
                self._forget(conn)

    def _take_idle(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        where = f"{self._host}:{self._port}"
        try:
            async with asyncio.timeout(self._timeout_s):
                _, conn = await loop.create_connection(
                    lambda: Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {where} in {self._timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectError(f"{where}: {exc}") from exc
        self._open.add(conn)
        return conn

    def _forget(self, conn: Connection) -> None:
        """Drop a closed connection (an idle one the server closed, too)."""
        self._open.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

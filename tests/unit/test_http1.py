"""The HTTP/1.1 streaming transport against real local asyncio servers scripted per test."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.client.aio import StreamingClient
from pytest_llmserve.client.dialects import DIALECTS, Prompt
from pytest_llmserve.client.http1 import BodyCallback, Connection, HTTP1Pool
from pytest_llmserve.load.records import RequestRecord

DIALECT = DIALECTS["openai-completions"]
PROMPT = Prompt("hello", 1, 3)


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


EVENTS = [
    *(event({"choices": [{"text": t, "index": 0, "finish_reason": None}]}) for t in "abc"),
    event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3}}),
    event("[DONE]"),
]
SSE = b"".join(EVENTS)


def chunked(*parts: bytes, ext: bytes = b"", trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts)
    return body + b"0\r\n" + trailer + b"\r\n"


def response(
    body: bytes, status: int = 200, framing: str = "chunked", close: bool = False
) -> bytes:
    reason = {200: "OK", 400: "Bad Request"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/event-stream\r\n"
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n"
    elif framing == "length":
        head += f"Content-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


OK_CHUNKED = response(chunked(*EVENTS))


class Request:
    def __init__(self, line: str, headers: dict[str, str], body: bytes) -> None:
        self.line, self.headers, self.body = line, headers, body


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(line, headers, body)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A local server; ``handler`` owns each connection. Counts connections and requests."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[Request] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"https://localhost:{port}" if self.tls else f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for _ in range(300):  # let handlers see their connections end (the client closed them)
            if not self.open:
                break
            await asyncio.sleep(0.01)

    async def next(self, reader: asyncio.StreamReader) -> Request | None:
        req = await read_request(reader)
        if req is not None:
            self.requests.append(req)
        return req

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(reader, writer, self)
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()


def answer_all(*writes: bytes, pause: float = 0.0) -> Handler:
    """Answer every request on the connection with ``writes`` (each its own write)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while await s.next(r) is not None:
            for data in writes:
                w.write(data)
                await w.drain()
                if pause:
                    await asyncio.sleep(pause)

    return handler


def record() -> RequestRecord:
    return RequestRecord(index=0, sent_at=0.0, prompt_tokens_sent=1, max_tokens=3)


async def send_n(url: str, n: int = 1, **kw: Any) -> tuple[list[RequestRecord], StreamingClient]:
    client = StreamingClient(url, "m", DIALECT, **kw)
    try:
        records = [await client.send(PROMPT, record()) for _ in range(n)]
    finally:
        await client.aclose()
    return records, client


def run(handler: Handler, n: int = 1, **kw: Any) -> tuple[list[RequestRecord], Server]:
    async def go() -> tuple[list[RequestRecord], Server]:
        async with Server(handler) as server:
            records, _ = await send_n(server.url, n, **kw)
            return records, server

    return asyncio.run(go())


def assert_complete(r: RequestRecord) -> None:
    assert r.ok, r.error
    assert r.status == 200
    assert len(r.chunk_times) == 3
    assert r.usage_output_tokens == 3
    assert r.sent_at < r.chunk_times[0] <= r.chunk_times[-1] <= r.last_byte_at  # type: ignore[operator]


# --- bodies and framing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        OK_CHUNKED,
        response(SSE, framing="length"),
        response(chunked(*EVENTS, ext=b";x=1", trailer=b"X-T: 1\r\n")),
    ],
    ids=["chunked", "content-length", "chunk-extensions-and-trailers"],
)
def test_a_streamed_response_fills_the_record(raw: bytes) -> None:
    records, server = run(answer_all(raw), n=2)
    for r in records:
        assert_complete(r)
    assert server.connections == 1  # kept alive and reused


def test_each_event_written_apart_is_stamped_apart() -> None:
    head = response(b"")
    writes = [head, *(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS), b"0\r\n\r\n"]
    [r], _ = run(answer_all(*writes, pause=0.01))
    assert_complete(r)
    gaps = [b - a for a, b in zip(r.chunk_times, r.chunk_times[1:], strict=False)]
    assert min(gaps) > 0.005


def test_a_body_delimited_by_the_end_of_the_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.next(r)
        w.write(response(SSE, framing="none"))
        await w.drain()

    records, server = run(handler, n=2)
    for r in records:
        assert_complete(r)
    assert server.connections == 2


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class Collect:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.reads = 0

    def head(self, status: int, at: float) -> BodyCallback:
        self.status = status
        return self._body

    def _body(self, data: bytes, at: float) -> None:
        self.reads += 1
        self.body += data


def feed_in_pieces(raw: bytes, cuts: list[int]) -> tuple[Collect, bool, bool]:
    """Feed ``raw`` to a connection cut at ``cuts``: (handler, reusable, aborted)."""

    async def go() -> tuple[Collect, bool, bool]:
        pool = HTTP1Pool("http://127.0.0.1:1")
        conn = Connection(pool)
        transport = FakeTransport()
        conn.connection_made(transport)
        handler = Collect()
        task = asyncio.create_task(conn.exchange(b"POST / HTTP/1.1\r\n\r\n", handler, 5.0))
        await asyncio.sleep(0)
        for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
            conn.data_received(raw[a:b])
        return handler, await task, transport.aborted

    return asyncio.run(go())


@pytest.mark.parametrize(
    "raw",
    [
        OK_CHUNKED,
        response(SSE, framing="length"),
        response(chunked(*EVENTS, ext=b" ; a=b", trailer=b"X-A: 1\r\nX-B: 2\r\n")),
    ],
    ids=["chunked", "content-length", "trailers"],
)
def test_reads_split_at_every_byte_give_the_same_body(raw: bytes) -> None:
    for cut in range(1, len(raw)):
        handler, reusable, aborted = feed_in_pieces(raw, [cut])
        assert (handler.status, handler.body, reusable, aborted) == (200, SSE, True, False), cut
    handler, reusable, _ = feed_in_pieces(raw, list(range(1, len(raw))))  # byte by byte
    assert (handler.body, reusable) == (SSE, True)


def test_bytes_after_the_response_forbid_reuse() -> None:
    handler, reusable, _ = feed_in_pieces(OK_CHUNKED + b"HTTP/1.1 200 OK\r\n", [])
    assert handler.body == SSE
    assert not reusable


def test_a_malformed_chunk_size_is_an_error() -> None:
    with pytest.raises(Exception, match="bad chunk size"):
        feed_in_pieces(response(b"zz\r\nabc\r\n0\r\n\r\n"), [])


# --- connections ------------------------------------------------------------------------


def test_connection_close_is_honoured() -> None:
    records, server = run(answer_all(response(chunked(*EVENTS), close=True)), n=3)
    for r in records:
        assert_complete(r)
    assert server.connections == 3


def test_a_stale_kept_alive_connection_is_retried_once_on_a_fresh_one() -> None:
    """The server answers the first request of each connection and drops the second unread."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.next(r)
        w.write(OK_CHUNKED)
        await w.drain()
        await read_request(r)  # the next request arrives on a connection it has given up
        w.transport.abort()

    records, server = run(handler, n=3)
    for r in records:
        assert_complete(r)
    assert server.connections == 3


def test_a_fresh_connection_closed_without_a_response_is_an_error() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.next(r)
        w.transport.abort()

    [r], server = run(handler)
    assert r.error is not None
    assert r.error.startswith("RemoteProtocolError: server disconnected without a response")
    assert r.status == 0
    assert server.connections == 1  # not retried


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_the_server_closing_mid_stream_is_recorded(framing: str) -> None:
    body = chunked(*EVENTS) if framing == "chunked" else SSE
    partial = response(body, framing=framing)[: -len(body) // 2]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.next(r)
        w.write(partial)
        await w.drain()

    [r], _ = run(handler)
    assert r.status == 200
    assert r.error is not None
    assert r.error.startswith("RemoteProtocolError: server closed the connection mid-response")
    assert not r.ok
    assert r.chunk_times  # what came before the drop is kept


def test_a_non_200_response_records_its_body_and_keeps_the_connection() -> None:
    text = json.dumps({"error": "model 'm' not found" + "x" * 1000})
    raw = response(text.encode(), status=400, framing="length")
    records, server = run(answer_all(raw), n=2)
    for r in records:
        assert r.status == 400
        assert r.error == f"HTTP 400: {text[:500]}"
        assert r.last_byte_at is not None
        assert not r.ok
    assert server.connections == 1


def test_bad_json_is_recorded_and_the_connection_dropped() -> None:
    raw = response(chunked(EVENTS[0], b"data: {nope\n\n", *EVENTS[1:]))
    records, server = run(answer_all(raw), n=2)
    for r in records:
        assert r.error is not None
        assert r.error.startswith("JSONDecodeError")
    assert server.connections == 2


def test_connection_refused_is_recorded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    records, _ = asyncio.run(send_n(f"http://127.0.0.1:{port}"))
    assert records[0].error is not None
    assert records[0].error.startswith("ConnectError:")
    assert records[0].status == 0


@pytest.mark.parametrize("after_head", [False, True])
def test_a_silent_server_is_a_read_timeout(after_head: bool) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.next(r)
        if after_head:
            w.write(OK_CHUNKED[:120])
        await r.read()  # silent until the client gives up and closes

    [r], _ = run(handler, timeout_s=0.2)
    assert r.error == "ReadTimeout: no data for 0.2 s"
    assert r.status == (200 if after_head else 0)


def test_concurrent_requests_respect_max_connections() -> None:
    async def go() -> tuple[list[RequestRecord], Server, int]:
        # Each response is written in two parts 20 ms apart, so requests overlap.
        async with Server(answer_all(OK_CHUNKED[:200], OK_CHUNKED[200:], pause=0.02)) as server:
            client = StreamingClient(server.url, "m", DIALECT, max_connections=3)
            records = await asyncio.gather(*(client.send(PROMPT, record()) for _ in range(20)))
            opened = client._pool.open_connections
            await client.aclose()
            return list(records), server, opened

    records, server, opened = asyncio.run(go())
    for r in records:
        assert_complete(r)
    assert server.max_open <= 3
    assert server.connections == 3
    assert opened == 3


def test_preconnect_opens_idle_connections_that_requests_then_reuse() -> None:
    """A run's connections are opened before its clock starts (``run_load``): a connect
    between a request's sent_at and its write would be timed as the server's TTFT."""

    async def go() -> tuple[Server, int, int]:
        async with Server(answer_all(OK_CHUNKED)) as server:
            client = StreamingClient(server.url, "m", DIALECT, max_connections=4)
            await client.preconnect(6)  # capped at max_connections
            opened = client._pool.open_connections
            await asyncio.gather(*(client.send(PROMPT, record()) for _ in range(4)))
            await client.preconnect(4)  # enough are open: nothing more
            after = client._pool.open_connections
            await client.aclose()
            return server, opened, after

    server, opened, after = asyncio.run(go())
    assert (opened, after, server.connections) == (4, 4, 4)


def test_the_request_carries_the_body_and_headers() -> None:
    async def go() -> tuple[list[RequestRecord], Server]:
        async with Server(answer_all(OK_CHUNKED)) as server:
            records, _ = await send_n(server.url + "/prefix/", api_key="sekrit")
            return records, server

    [r], server = asyncio.run(go())
    assert_complete(r)
    [req] = server.requests
    assert req.line == "POST /prefix/v1/completions HTTP/1.1"
    assert req.headers["authorization"] == "Bearer sekrit"
    assert req.headers["host"] == server.url.removeprefix("http://")
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["user-agent"].startswith("pytest-llmserve")
    assert int(req.headers["content-length"]) == len(req.body)
    assert json.loads(req.body) == DIALECT.request("m", PROMPT)[1]


def test_no_authorization_header_without_a_key() -> None:
    [r], server = run(answer_all(OK_CHUNKED))
    assert_complete(r)
    assert "authorization" not in server.requests[0].headers


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HTTP1Pool("ftp://example.com")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, written as PEM files."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_is_verified_against_the_default_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def go(trusted: bool) -> tuple[list[RequestRecord], Server]:
        async with Server(answer_all(OK_CHUNKED), tls=server_ctx) as server:
            if trusted:
                monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            records, _ = await send_n(server.url, n=2)
        return records, server

    records, server = asyncio.run(go(trusted=True))
    for r in records:
        assert_complete(r)
    assert server.connections == 1
    monkeypatch.delenv("SSL_CERT_FILE")
    [r, _], _ = asyncio.run(go(trusted=False))
    assert r.error is not None
    assert r.error.startswith("ConnectError:")
    assert "CERTIFICATE_VERIFY_FAILED" in r.error


def test_preconnect_to_nobody_returns_at_once_and_leaves_the_failure_to_the_request() -> None:
    async def go() -> tuple[int, RequestRecord]:
        client = StreamingClient("http://127.0.0.1:9", "m", DIALECT)  # nobody listens
        await client.preconnect(4)
        opened = client._pool.open_connections
        r = await client.send(PROMPT, record())
        await client.aclose()
        return opened, r

    opened, r = asyncio.run(go())
    assert opened == 0
    assert r.error is not None
    assert "Connect" in r.error

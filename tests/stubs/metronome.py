"""A metronome: a streaming LLM server whose timing is exact, known, and written down.

Every timing figure the plugin reports (TTFT, TPOT, ITL, E2E, output tok/s,
goodput) is checked against this server (``tests/unit/test_timing_truth.py``), and
vLLM's own benchmark can be pointed at it too (``benchmarks/timing_truth.py``), so
both tools' errors are measured against the same truth.

It speaks the three streaming dialects the client sends (``client.dialects``):
OpenAI ``/v1/completions`` and ``/v1/chat/completions`` (with the role-only first
chunk vLLM sends, which is not a token) and TGI's ``/generate_stream``. Each
request gets its first text ``ttft`` after it arrived, then a chunk every ``itl``,
each chunk carrying ``chunk_tokens`` tokens (the last one what is left of
``max_tokens``); ``jitter`` scales every planned gap by a seeded uniform factor in
``[1 - jitter, 1 + jitter]``, so a run has real spread to take percentiles of.

**The truth is what it did, not what it planned.** asyncio wakes a sleeper up to
a millisecond late (epoll's timeout is in whole milliseconds), so each write is
stamped with ``time.perf_counter()`` just before it is handed to the socket (a
stamp taken after could be late by however long the process was preempted in
between, and the client would then seem to read a chunk before it was sent), each
request's arrival is the kernel's receive stamp (``SO_TIMESTAMPNS``: a stamp taken
when this process got round to reading would count its own busy loop as the
client's delay), and ``GET /truth`` returns them per request. On Linux ``perf_counter`` is
``CLOCK_MONOTONIC``, one clock for every process of the host, so the client's
stamps and these compare directly. The plan sits beside them, so a test can also
bound how far the metronome strayed from it.

Run: ``python -m tests.stubs.metronome --ttft-ms 40 --itl-ms 8``; it prints
``PORT <n>`` once it listens on 127.0.0.1. ``metronome(...)`` does that for a block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmserve.load.records import LoadRun, RequestRecord

MODEL = "metronome"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value, where Python has no name
OK_STREAM = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)


@dataclass(frozen=True)
class Tempo:
    """How every response is timed (seconds), and how tokens are bundled into chunks."""

    ttft_s: float = 0.04
    itl_s: float = 0.008
    chunk_tokens: int = 1
    jitter: float = 0.0
    seed: int = 0
    slow_share: float = 0.0  # requests whose TTFT is ``slow_factor`` times longer (queued)
    slow_factor: float = 3.0

    def plan(self, key: str, tokens: int) -> tuple[float, list[float], list[int]]:
        """(TTFT, the gaps between chunks, tokens per chunk) for the request ``key``.

        Seeded by the request's own key, so the plan does not depend on arrival order.
        """
        rng = random.Random(zlib.crc32(key.encode()) ^ self.seed)

        def vary(s: float) -> float:
            return s * rng.uniform(1 - self.jitter, 1 + self.jitter)

        sizes = [self.chunk_tokens] * (tokens // self.chunk_tokens)
        if tokens % self.chunk_tokens:
            sizes.append(tokens % self.chunk_tokens)
        ttft = vary(self.ttft_s) * (self.slow_factor if rng.random() < self.slow_share else 1)
        return ttft, [vary(self.itl_s) for _ in sizes[1:]], sizes


@dataclass
class Beat:
    """One request as the metronome served it: planned and actual times (perf_counter s)."""

    key: str
    path: str
    prompt_tokens: int
    arrived: float
    planned_ttft_s: float
    planned_gaps_s: list[float]
    tokens: list[int]  # per text chunk
    writes: list[float] = field(default_factory=list)  # each text chunk handed to the socket
    ended: float | None = None  # just before the response's last bytes went to the socket


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(body: dict[str, Any]) -> bytes:
    return _chunk(b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n")


def _reply(status: int, body: Any) -> bytes:
    data = json.dumps(body).encode()
    return (
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: keep-alive\r\n\r\n%s" % (status, len(data), data)
    )


def request_key(path: str, body: dict[str, Any]) -> str:
    """What identifies a request: its prompt, as each dialect carries it."""
    if path.endswith("/chat/completions"):
        return str((body.get("messages") or [{}])[-1].get("content"))
    if path == "/generate_stream":
        return str(body.get("inputs"))
    return json.dumps(body.get("prompt"))


class Metronome:
    """Serves every request on ``tempo``'s plan and keeps a ``Beat`` of each."""

    def __init__(self, tempo: Tempo) -> None:
        self.tempo = tempo
        self.beats: list[Beat] = []

    async def handle(self, wire: Wire) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                method, path, body, arrived = await wire.request()
                await self._route(method, path, body, arrived, wire)
        wire.close()

    async def _route(
        self, method: str, path: str, body: dict[str, Any], arrived: float, writer: Wire
    ) -> None:
        if method == "GET":
            known = {
                "/health": {},
                "/v1/models": {"object": "list", "data": [{"id": MODEL, "object": "model"}]},
                "/truth": {"tempo": asdict(self.tempo), "beats": [asdict(b) for b in self.beats]},
            }
            writer.write(_reply(200, known[path]) if path in known else _reply(404, {}))
        elif path in ("/v1/completions", "/v1/chat/completions", "/generate_stream"):
            await self._stream(path, body, arrived, writer)
        else:
            writer.write(_reply(404, {"error": f"no route {path}"}))
        await writer.drain()

    async def _stream(self, path: str, body: dict[str, Any], arrived: float, writer: Wire) -> None:
        key = request_key(path, body)
        params = body.get("parameters") or {}
        tokens = int(body.get("max_tokens") or params.get("max_new_tokens") or 16)
        ttft, gaps, sizes = self.tempo.plan(key, tokens)
        prompt = body.get("prompt") or key
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        beat = Beat(key, path, prompt_tokens, arrived, ttft, gaps, sizes)
        self.beats.append(beat)
        writer.write(OK_STREAM)
        if path.endswith("/chat/completions"):  # vLLM's role chunk: no text, not a token
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            writer.write(_event({"choices": [role]}))
        await writer.drain()
        due = arrived + ttft
        for i, n in enumerate(sizes):
            if i:
                due += gaps[i - 1]
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            last = i == len(sizes) - 1
            event = _text_event(path, "tok " * n, last, sum(sizes[: i + 1]))
            beat.writes.append(time.perf_counter())
            writer.write(event)
            await writer.drain()
        if path != "/generate_stream":
            if (body.get("stream_options") or {}).get("include_usage"):
                total = prompt_tokens + tokens
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens}
                writer.write(_event({"choices": [], "usage": usage | {"total_tokens": total}}))
            writer.write(_chunk(b"data: [DONE]\n\n"))
        beat.ended = time.perf_counter()
        writer.write(b"0\r\n\r\n")


def _text_event(path: str, text: str, last: bool, sent: int) -> bytes:
    """One text chunk in ``path``'s dialect; the last one says why it ended."""
    finish = "length" if last else None
    if path == "/generate_stream":
        details = {"finish_reason": "length", "generated_tokens": sent} if last else None
        token = {"id": 1, "text": text, "logprob": 0.0, "special": False}
        return _event({"token": token, "generated_text": None, "details": details})
    if path.endswith("/chat/completions"):
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}}
    else:
        choice = {"index": 0, "text": text}
    choice["finish_reason"] = finish
    return _event({"object": "stream", "model": MODEL, "choices": [choice]})


class Wire:
    """One accepted connection: requests read with the kernel's arrival stamp, and
    writes sent at once (Nagle off, as an HTTP server sets it)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = b""
        self.pending = b""

    async def _recv(self) -> tuple[bytes, float]:
        done: asyncio.Future[tuple[bytes, float]] = self.loop.create_future()

        def readable() -> None:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65536, 256)
            except BlockingIOError:
                return
            except OSError as exc:
                if not done.done():
                    done.set_exception(ConnectionError(exc))
                return
            if not done.done():
                done.set_result((data, _kernel_stamp(ancillary)))

        self.loop.add_reader(self.sock.fileno(), readable)
        try:
            return await done
        finally:
            self.loop.remove_reader(self.sock.fileno())

    async def request(self) -> tuple[str, str, dict[str, Any], float]:
        """(method, path, JSON body, when its last byte reached this host's kernel)."""
        arrived = 0.0
        while b"\r\n\r\n" not in self.buf:
            data, arrived = await self._recv()
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data, arrived = await self._recv()
            if not data:
                raise ConnectionError("closed")
            rest += data
        self.buf = rest[length:]
        method, path = head.split(b" ", 2)[:2]
        body = json.loads(rest[:length]) if length else {}
        return method.decode(), path.decode(), body, arrived

    def write(self, data: bytes) -> None:
        self.pending += data

    async def drain(self) -> None:
        data, self.pending = self.pending, b""
        await self.loop.sock_sendall(self.sock, data)

    def close(self) -> None:
        self.sock.close()


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time (``SO_TIMESTAMPNS``, a wall-clock stamp) moved onto
    ``perf_counter``'s clock; the time of reading where the kernel gave none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9 - (time.time() - time.perf_counter())
    return time.perf_counter()


async def serve(tempo: Tempo, port: int = 0) -> None:
    metronome = Metronome(tempo)
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    listener.setblocking(False)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    serving = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        task = asyncio.create_task(metronome.handle(Wire(sock)))
        serving.add(task)
        task.add_done_callback(serving.discard)


@contextlib.contextmanager
def metronome(tempo: Tempo) -> Iterator[str]:
    """A metronome in its own process (it must not share the client's event loop or
    GIL) for the block; yields its base URL."""
    argv = [sys.executable, "-m", "tests.stubs.metronome", "--ttft-ms", str(tempo.ttft_s * 1e3),
            "--itl-ms", str(tempo.itl_s * 1e3), "--chunk-tokens", str(tempo.chunk_tokens),
            "--jitter", str(tempo.jitter), "--seed", str(tempo.seed), "--slow-share",
            str(tempo.slow_share), "--slow-factor", str(tempo.slow_factor)]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the metronome did not start (exit code {proc.wait(10)})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(10)


def beats(url: str) -> list[dict[str, Any]]:
    """What the metronome at ``url`` served so far, one ``Beat`` (as a dict) per request."""
    with urllib.request.urlopen(url + "/truth", timeout=10) as response:
        found: list[dict[str, Any]] = json.load(response)["beats"]
    return found


def truth_run(client: LoadRun, keys: list[str], served: list[dict[str, Any]]) -> LoadRun:
    """``client``'s run as the metronome served it: its stamps in the client's records'
    places (``keys[i]``: request i's key), so ``run_metrics`` gives the true figures."""
    by_key = {b["key"]: b for b in served}
    records = []
    for r in client.records:
        b = by_key[keys[r.index]]
        records.append(
            RequestRecord(
                index=r.index,
                sent_at=b["arrived"],
                prompt_tokens_sent=r.prompt_tokens_sent,
                max_tokens=r.max_tokens,
                status=200,
                first_token_at=b["writes"][0],
                last_byte_at=b["ended"],
                chunk_times=b["writes"],
                chunk_tokens=b["tokens"],
                usage_prompt_tokens=b["prompt_tokens"],
                usage_output_tokens=sum(b["tokens"]),
                warmup=r.warmup,
            )
        )
    measured = [r for r in records if not r.warmup]
    started = min(r.sent_at for r in measured)
    ended = max(r.last_byte_at or 0.0 for r in measured)
    return LoadRun(records, started, ended, client.concurrency, client.rate_rps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=40.0)
    parser.add_argument("--itl-ms", type=float, default=8.0)
    parser.add_argument("--chunk-tokens", type=int, default=1)
    parser.add_argument("--jitter", type=float, default=0.0, help="0 to 0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-share", type=float, default=0.0)
    parser.add_argument("--slow-factor", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    tempo = Tempo(
        args.ttft_ms / 1e3, args.itl_ms / 1e3, args.chunk_tokens, args.jitter, args.seed,
        args.slow_share, args.slow_factor,
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(tempo, args.port))


if __name__ == "__main__":
    main()

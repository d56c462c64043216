"""A minimal OpenAI-compatible ``/v1/completions`` streaming stub that answers instantly.

It exists to measure *our client*, not a server: every response is precomputed
bytes written over raw asyncio streams (HTTP/1.1 keep-alive, chunked transfer
encoding), so the stub does as little per event as a Python server can, and runs
in its own process pinned to its own core so it does not share the client's CPU.

Each request is answered with N text events
``data: {"choices":[{"text":"x","index":0,"finish_reason":null}]}``, a usage event
(``prompt_tokens``, ``completion_tokens: N``) and ``data: [DONE]``. N is the
request's ``max_tokens`` unless ``--tokens`` fixes it.

Write modes, because how events are packed into network writes decides how much
work the client does per event:

- ``per-event``: every event is its own HTTP chunk, written with its own
  ``write()`` + ``drain()`` (its own TCP segment; asyncio sets TCP_NODELAY), as
  fast as the stub can, yielding to the loop between events so concurrent streams
  interleave. A client slower than the stub finds many events waiting at each
  read, so this is its cost per HTTP chunk, not per network read.
- ``paced``: every event its own chunk and write, and each stream gets its next
  event ``--interval-ms`` after the last (all streams are written on one timer
  tick, so the stub's own cost stays small). While the client keeps up, every
  event is its own network read: the client's worst case, and what a real server
  streaming tokens does. The offered rate is concurrency / interval.
- ``batched``: the whole response in one write: the client's best case.

Run: ``python benchmarks/stub_server.py --mode per-event --core 1``; it prints
``PORT <n>`` on its first stdout line once it listens on 127.0.0.1 (port 0: the OS
picks a free one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from typing import Literal

Mode = Literal["per-event", "paced", "batched"]

TEXT_EVENT = b'data: {"choices":[{"text":"x","index":0,"finish_reason":null}]}\n\n'
DONE_EVENT = b"data: [DONE]\n\n"
HEADERS_OK = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


def http_chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk (size in hex, CRLF, payload, CRLF)."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def usage_event(prompt_tokens: int, completion_tokens: int) -> bytes:
    """The final OpenAI ``include_usage`` event: no choices, only usage."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    body = json.dumps({"choices": [], "usage": usage}, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


def error_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: keep-alive\r\n\r\n%s" % (status, reason.encode(), len(body), body)
    )


class Stub:
    """The request handler; bodies are cached per (N, prompt tokens) in batched mode."""

    def __init__(self, mode: Mode, fixed_tokens: int | None, interval_s: float = 0.001) -> None:
        self.mode = mode
        self.fixed_tokens = fixed_tokens
        self.interval_s = interval_s
        self._text_chunk = http_chunk(TEXT_EVENT)
        self._done_chunk = http_chunk(DONE_EVENT) + LAST_CHUNK
        self._batched: dict[tuple[int, int], bytes] = {}
        self._paced: list[_PacedStream] = []
        self._ticker: asyncio.Task[None] | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                request_line = head.split(b"\r\n", 1)[0]
                if not request_line.startswith(b"POST /v1/completions"):
                    writer.write(error_response(404, "Not Found", "only /v1/completions"))
                    await writer.drain()
                    continue
                try:
                    request = json.loads(body)
                except ValueError:
                    writer.write(error_response(400, "Bad Request", "body is not JSON"))
                    await writer.drain()
                    continue
                n = self.fixed_tokens or int(request.get("max_tokens") or 16)
                prompt = request.get("prompt") or ""
                prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
                if self.mode == "batched":
                    writer.write(self._batched_response(n, prompt_tokens))
                    await writer.drain()
                elif self.mode == "paced":
                    await self._paced_response(writer, n, prompt_tokens)
                else:
                    await self._per_event(writer, n, prompt_tokens)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _batched_response(self, n: int, prompt_tokens: int) -> bytes:
        key = (n, prompt_tokens)
        cached = self._batched.get(key)
        if cached is None:
            body = TEXT_EVENT * n + usage_event(prompt_tokens, n) + DONE_EVENT
            cached = HEADERS_OK + http_chunk(body) + LAST_CHUNK
            if len(self._batched) < 64:
                self._batched[key] = cached
        return cached

    async def _per_event(self, writer: asyncio.StreamWriter, n: int, prompt_tokens: int) -> None:
        writer.write(HEADERS_OK)
        await writer.drain()
        text = self._text_chunk
        for _ in range(n):
            writer.write(text)
            await writer.drain()
            await asyncio.sleep(0)  # let other streams' events interleave with ours
        writer.write(http_chunk(usage_event(prompt_tokens, n)))
        await writer.drain()
        writer.write(self._done_chunk)
        await writer.drain()

    async def _paced_response(
        self, writer: asyncio.StreamWriter, n: int, prompt_tokens: int
    ) -> None:
        writer.write(HEADERS_OK)
        stream = _PacedStream(writer, n, prompt_tokens, asyncio.get_running_loop().create_future())
        self._paced.append(stream)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())
        await stream.done
        await writer.drain()

    async def _tick(self) -> None:
        """Every interval, one event to every paced stream; finished streams are ended."""
        text, done = self._text_chunk, self._done_chunk
        while self._paced:
            await asyncio.sleep(self.interval_s)
            still: list[_PacedStream] = []
            for s in self._paced:
                if s.writer.is_closing():
                    s.done.set_result(None)
                    continue
                if s.remaining:
                    s.writer.write(text)
                    s.remaining -= 1
                    still.append(s)
                else:
                    s.writer.write(http_chunk(usage_event(s.prompt_tokens, s.n)) + done)
                    s.done.set_result(None)
            self._paced = still  # no stream joins during the loop: it never awaits


class _PacedStream:
    """A response in paced mode: its writer and how many text events it still owes."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        n: int,
        prompt_tokens: int,
        done: asyncio.Future[None],
    ) -> None:
        self.writer = writer
        self.n = n
        self.remaining = n
        self.prompt_tokens = prompt_tokens
        self.done = done


async def serve(
    mode: Mode, fixed_tokens: int | None, host: str, port: int, interval_s: float = 0.001
) -> None:
    stub = Stub(mode, fixed_tokens, interval_s)
    server = await asyncio.start_server(stub.handle, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["per-event", "paced", "batched"], default="per-event")
    parser.add_argument(
        "--interval-ms", type=float, default=1.0, help="paced mode: time between a stream's events"
    )
    parser.add_argument("--tokens", type=int, default=None, help="N, overriding max_tokens")
    parser.add_argument("--core", type=int, default=1, help="CPU to pin to (-1: no pinning)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.core})
        except OSError as exc:
            print(f"stub: could not pin to core {args.core}: {exc}", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.mode, args.tokens, args.host, args.port, args.interval_ms / 1e3))


if __name__ == "__main__":
    main()

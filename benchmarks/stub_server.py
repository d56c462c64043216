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
  ``write()`` + ``drain()`` (its own TCP segment; asyncio sets TCP_NODELAY), and the
  handler yields to the loop between events so concurrent streams interleave. This
  is the client's worst case: as close to one network read per event as an instant
  server gets. (Whether the client still reads several events at once depends on
  how fast it is; the benchmark reports events per read.)
- ``batched``: the whole response body in one write: the client's best case.

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

Mode = Literal["per-event", "batched"]

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

    def __init__(self, mode: Mode, fixed_tokens: int | None) -> None:
        self.mode = mode
        self.fixed_tokens = fixed_tokens
        self._text_chunk = http_chunk(TEXT_EVENT)
        self._done_chunk = http_chunk(DONE_EVENT) + LAST_CHUNK
        self._batched: dict[tuple[int, int], bytes] = {}

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


async def serve(mode: Mode, fixed_tokens: int | None, host: str, port: int) -> None:
    stub = Stub(mode, fixed_tokens)
    server = await asyncio.start_server(stub.handle, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["per-event", "batched"], default="per-event")
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
        asyncio.run(serve(args.mode, args.tokens, args.host, args.port))


if __name__ == "__main__":
    main()

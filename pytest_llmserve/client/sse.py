"""Incremental Server-Sent Events parsing, independent of how bytes are chunked.

Network chunks split events anywhere (inside a line, inside a UTF-8 character,
between CR and LF) and one chunk may carry several events; the parser buffers
bytes and yields only complete events.

It runs once per network read of every stream in a load run, so it is written
for speed (``benchmarks/client_ceiling.py`` measures it): the buffer is scanned
once per feed, never re-searched from its start for each line; streams with no CR
(what every server we target sends) take a fast path that splits lines with one
``bytes.split``; ``data:`` lines are recognised on bytes before any decoding.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Feed bytes as they arrive; complete events come out (WHATWG event-stream rules)."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._after_cr = False  # the last chunk ended with CR: skip an LF that starts the next

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that ``chunk`` completes, in order (parsed now, not lazily)."""
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        cr, lf = buf.find(b"\r"), buf.find(b"\n")
        if cr == -1 and lf == -1:
            self._buf = buf  # no complete line yet
            return []
        events: list[Event] = []
        if cr == -1:
            # LF-only: one split gives every complete line; the last piece is the
            # unterminated rest (b"" when the chunk ended on a line ending).
            lines = buf.split(b"\n")
            self._buf = lines.pop()
            for raw in lines:
                self._line(raw, events)
            return events
        pos, end = 0, len(buf)
        while cr != -1 or lf != -1:
            if cr != -1 and (lf == -1 or cr < lf):
                line = buf[pos:cr]
                if cr == end - 1:
                    # A CR at the end ends the line now (holding it would delay the event
                    # until more bytes come, forever at the end of a CR-only stream); if
                    # it is the first half of a CRLF, feed() drops the LF that follows.
                    self._after_cr = True
                    pos = end
                else:
                    pos = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
            else:
                line, pos = buf[pos:lf], lf + 1
            self._line(line, events)
            # Search again only for a delimiter that has been consumed.
            if cr != -1 and cr < pos:
                cr = buf.find(b"\r", pos)
            if lf != -1 and lf < pos:
                lf = buf.find(b"\n", pos)
        self._buf = buf[pos:]
        return events

    def _line(self, raw: bytes, events: list[Event]) -> None:
        """Apply one line (without its ending); a dispatched event is appended to ``events``.

        Splitting on the ASCII ``:`` before decoding gives the same text as decoding
        first: no byte of a multi-byte UTF-8 sequence is ASCII.
        """
        if not raw:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
                events.append(Event(data, self._event or "message", self._id))
                self._data = []
            self._event = ""
            return
        if raw.startswith(b"data:"):
            value = raw[6:] if raw[5:6] == b" " else raw[5:]
            self._data.append(value.decode("utf-8", errors="replace"))
            return
        if raw[:1] == b":":
            return  # comment / keep-alive
        name, _, value = raw.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # a bare "data" line (no colon): an empty data value
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id":
            self._id = value.decode("utf-8", errors="replace")

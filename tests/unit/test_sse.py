"""SSEParser: the events that come out never depend on how the bytes were chunked."""

from __future__ import annotations

import random

import pytest

from pytest_llmserve.client.sse import Event, SSEParser

# A stream that exercises every field, every line ending, comments, multi-line data,
# multi-byte UTF-8 and the OpenAI terminator.
STREAM = (
    b": keep-alive\n"
    b"\n"
    b'data: {"text": "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"}\n'
    b"\n"
    b"event: delta\r\n"
    b"id: 7\r\n"
    b"data: line one\r\n"
    b"data: line two\r\n"
    b"\r\n"
    b"data: cr only\r"
    b"data:no space\r"
    b"\r"
    b": comment between events\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    Event(data='{"text": "héllo € 😀"}'),
    Event(data="line one\nline two", event="delta", id="7"),
    # The last event id persists (WHATWG "last event ID buffer"); the event type does not.
    Event(data="cr only\nno space", id="7"),
    Event(data="[DONE]", id="7"),
]


def feed_chunks(chunks: list[bytes]) -> list[Event]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(0, 7)  # empty chunks included
        chunks.append(data[i : i + n])
        i += n
    return chunks


def test_whole_stream_yields_expected_events() -> None:
    assert feed_chunks([STREAM]) == EXPECTED


def test_byte_by_byte_feeding_matches_whole_stream() -> None:
    assert feed_chunks([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_stream_split_in_two_at_every_byte_position(cut: int) -> None:
    assert feed_chunks([STREAM[:cut], STREAM[cut:]]) == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_random_chunkings_match_whole_stream(seed: int) -> None:
    assert feed_chunks(random_chunks(STREAM, random.Random(seed))) == EXPECTED


def test_several_events_in_one_chunk_all_come_out() -> None:
    events = list(SSEParser().feed(b"data: a\n\ndata: b\n\ndata: c\n\n"))
    assert [e.data for e in events] == ["a", "b", "c"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_each_line_ending_delimits_events(eol: bytes) -> None:
    stream = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert [e.data for e in feed_chunks([stream])] == ["a\nb", "c"]


def test_crlf_split_between_chunks_is_one_line_ending_not_two() -> None:
    # If the CR and the LF were taken as two line ends, the empty "line" between them
    # would dispatch the event after its first data line.
    parser = SSEParser()
    assert list(parser.feed(b"data: a\r")) == []
    assert list(parser.feed(b"\ndata: b\r")) == []
    assert list(parser.feed(b"\n\r")) == [Event(data="a\nb")]
    assert list(parser.feed(b"\n")) == []
    assert list(parser.feed(b"data: c\r\n\r\n")) == [Event(data="c")]


def test_empty_chunk_between_cr_and_lf_keeps_them_one_line_ending() -> None:
    parser = SSEParser()
    assert list(parser.feed(b"data: a\r")) == []
    assert list(parser.feed(b"")) == []
    assert list(parser.feed(b"\ndata: b\r\n\r\n")) == [Event(data="a\nb")]


def test_cr_only_event_is_dispatched_without_waiting_for_more_bytes() -> None:
    # A CR-only stream's last event (often `[DONE]`) has no byte after it: holding the
    # final CR in case an LF follows would never deliver it, and would delay the arrival
    # time of every event by one chunk.
    parser = SSEParser()
    assert list(parser.feed(b"data: a\r")) == []
    assert list(parser.feed(b"\r")) == [Event(data="a")]
    assert list(parser.feed(b"data: [DONE]\r\r")) == [Event(data="[DONE]")]


def test_multibyte_character_split_across_chunks_decodes_once() -> None:
    euro = "€".encode()
    assert len(euro) == 3
    events = feed_chunks([b"data: ", euro[:1], euro[1:2], euro[2:], b"\n\n"])
    assert events == [Event(data="€")]


def test_keep_alive_comments_yield_nothing() -> None:
    assert feed_chunks([b": keep-alive\n\n: ping\n\n"]) == []


def test_event_and_id_fields_are_carried() -> None:
    [event] = feed_chunks([b"event: error\nid: 42\ndata: boom\n\n"])
    assert event == Event(data="boom", event="error", id="42")


def test_event_type_resets_to_message_after_dispatch() -> None:
    events = feed_chunks([b"event: x\ndata: 1\n\ndata: 2\n\n"])
    assert [e.event for e in events] == ["x", "message"]


def test_event_type_without_data_does_not_leak_into_next_event() -> None:
    events = feed_chunks([b"event: x\n\ndata: 1\n\n"])
    assert events == [Event(data="1")]


def test_done_sentinel_is_an_ordinary_data_event() -> None:
    assert feed_chunks([b"data: [DONE]\n\n"]) == [Event(data="[DONE]")]


def test_only_one_leading_space_is_stripped_from_values() -> None:
    assert feed_chunks([b"data:  two spaces\n\n"]) == [Event(data=" two spaces")]


def test_empty_data_line_dispatches_an_empty_event() -> None:
    assert feed_chunks([b"data:\n\n"]) == [Event(data="")]


def test_no_trailing_blank_line_means_no_event_yet() -> None:
    parser = SSEParser()
    assert list(parser.feed(b"data: partial\n")) == []
    assert list(parser.feed(b"data: more\n")) == []
    assert list(parser.feed(b"\n")) == [Event(data="partial\nmore")]


def test_unknown_fields_are_ignored() -> None:
    assert feed_chunks([b"retry: 1000\nfoo: bar\ndata: x\n\n"]) == [Event(data="x")]

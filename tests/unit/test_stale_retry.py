"""A request whose connection the server had closed is sent again once, on a new one;
every other failure is the caller's to see."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from pytest_llmserve.client.stale import RetryStale

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[int]]]:
    """Closes the first ``closes`` connections without a byte of response, then answers."""
    closes: int = request.param
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                seen.append(1)
                if len(seen) > closes:
                    conn.sendall(OK)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    listener.close()


@pytest.mark.parametrize("server", [1], indirect=True)
def test_a_connection_closed_before_any_response_is_retried_once(
    server: tuple[str, list[int]],
) -> None:
    url, seen = server
    with httpx.Client(transport=RetryStale()) as http:
        assert http.post(url, json={}).text == "ok"
    assert len(seen) == 2


@pytest.mark.parametrize("server", [2], indirect=True)
def test_a_second_close_is_raised(server: tuple[str, list[int]]) -> None:
    url, seen = server
    with httpx.Client(transport=RetryStale()) as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(url, json={})
    assert len(seen) == 2

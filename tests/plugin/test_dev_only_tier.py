"""The fast and pytester tiers pass with ``pip install -e '.[dev]'`` alone, in any order.

An in-process pytester run drops from ``sys.modules`` every module first imported
inside it (the plugin module says why that broke httpx's error mapping); this
check fails when that comes back.
"""

from __future__ import annotations

import socket

import httpx
import pytest

INNER = """
import httpx
import pytest

def test_refused_is_an_httpx_error():
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:{port}/", timeout=5)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


def test_httpx_still_maps_errors_after_an_in_process_run(pytester: pytest.Pytester) -> None:
    port = _closed_port()
    pytester.makepyfile(INNER.format(port=port))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    # The inner run's modules are gone now; the outer process must still map them.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)

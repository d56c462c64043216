"""An httpx transport that sends a request again, once, when the kept-alive connection
it went out on had already been closed by the server.

"Server disconnected without sending a response" on a reused connection means the
server closed it before it read the request (llama.cpp's server does this after a
streamed response, for about one next request in three: measured on build 0c1e570),
so sending it on a fresh connection repeats nothing. It is what browsers, httpx's
own pool for idle closes it sees in time, and the load runner's HTTP/1.1 client
(``http1.Pool``) do. Any other failure, and a second one, is raised as it came.
"""

from __future__ import annotations

import httpx

_NO_RESPONSE = "without sending a response"


class RetryStale(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError as exc:
            if _NO_RESPONSE not in str(exc):
                raise
        return super().handle_request(request)

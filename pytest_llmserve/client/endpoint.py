"""Where and how to talk to one target's server: what every probe needs, in one value.

Probes take an ``Endpoint`` instead of a base URL, a model name, auth headers and a
framework name each; the paths they call come from its framework, so no probe
spells an API path of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.server import Server


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    served_name: str
    framework: Framework
    # The Authorization header when the target has a key ({} otherwise); values are
    # ``Secret``s, masked in reprs.
    headers: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def of(cls, server: Server) -> Endpoint:
        return cls(
            base_url=server.base_url,
            served_name=server.served_name,
            framework=server.framework,
            headers=auth.auth_headers(server.target),
        )

    def url(self, path: str) -> str:
        return self.base_url + path

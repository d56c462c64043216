"""Auth: a server with an API key refuses requests without it, or with a wrong one.

Each probe sends the same small completion (the framework's one-token readiness
request) three ways (no key, a wrong key, the key) and reads the status; the
endpoints a framework leaves open on purpose (``Framework.open_paths``: health,
metrics...) are reported, not judged. Nothing here puts a key in a message:
reasons name statuses only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.profile.model import Secret


@dataclass(frozen=True)
class AuthProbe:
    """HTTP status of one completion sent without a key, with a wrong one, with the key."""

    without_key: int
    wrong_key: int
    with_key: int
    unguarded: dict[str, int] = field(default_factory=dict)  # path -> status without a key
    path: str = ""  # where the completion was posted


def probe(endpoint: Endpoint, timeout_s: float = 60.0) -> AuthProbe:
    """Probe a server with a key: ``endpoint.headers`` carries it (``ValueError`` if not)."""
    if "Authorization" not in endpoint.headers:
        raise ValueError("the endpoint carries no API key: nothing to probe")
    framework = endpoint.framework
    path, body = framework.readiness_request(endpoint.served_name)  # one token, greedy
    wrong = Secret(secrets.token_urlsafe(24))  # masked in tracebacks with locals

    def post(headers: dict[str, str]) -> int:
        r = httpx.post(endpoint.url(path), json=body, headers=headers,
                       timeout=timeout_s, trust_env=False)  # fmt: skip
        return r.status_code

    def bearer(k: str) -> dict[str, str]:
        return {"Authorization": Secret(f"Bearer {k}")}

    unguarded = {}
    for open_path in framework.open_paths:
        if open_path == framework.paths.tokenize:
            r = httpx.post(endpoint.url(open_path),
                           json={"model": endpoint.served_name, "prompt": "Hi"},
                           timeout=timeout_s, trust_env=False)  # fmt: skip
        else:
            r = httpx.get(endpoint.url(open_path), timeout=timeout_s, trust_env=False)
        unguarded[open_path] = r.status_code
    return AuthProbe(post({}), post(bearer(wrong)), post(dict(endpoint.headers)), unguarded, path)


def auth_verdicts(p: AuthProbe) -> list[Verdict]:
    def v(ok: bool, reason: str, metric: str, status: int) -> Verdict:
        return Verdict("pass" if ok else "fail", reason, metric, 401, float(status), None)

    return [
        v(p.without_key == 401, f"a completion without a key got HTTP {p.without_key} "
          "(expected 401)", "auth_without_key_status", p.without_key),
        v(p.wrong_key == 401, f"a completion with a wrong key got HTTP {p.wrong_key} "
          "(expected 401)", "auth_wrong_key_status", p.wrong_key),
        v(p.with_key == 200, f"a completion with the key got HTTP {p.with_key} (expected 200)",
          "auth_with_key_status", p.with_key),
    ]  # fmt: skip

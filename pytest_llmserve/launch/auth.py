"""API keys: where a target's key comes from, and keeping it out of everything we write.

A profile names an environment variable (``api_key_env``), never the key, so a key
cannot reach a repr, a test id, a report or the history. A server we launch gets the
key through its environment (argv shows in ``ps`` and in our log header). When a
launched target's variable is unset, the session makes up a random key and puts it
there: the server and every client of this session read the same one, and CI needs
no secret to exercise auth. An external server's key cannot be made up: it must be set.
"""

from __future__ import annotations

import os
import re
import secrets
from urllib.parse import urlsplit, urlunsplit

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.profile.model import Secret, Target

MASK = "***"
# Flags whose value is a secret, wherever a framework takes one on its command line.
_SECRET_FLAG = re.compile(r"(key|token|secret|passw|auth|credential|cookie)", re.IGNORECASE)
_MIN_SECRET_LEN = 8  # shorter "secrets" would mask ordinary words in logs


def ensure_api_key(target: Target, *, generate: bool) -> Secret | None:
    """The target's key; when unset, generated into its variable if ``generate`` (a server
    this session launches), else an error: a server started elsewhere has its own key."""
    if not target.api_key_env:
        return None
    key = target.api_key()
    if key:
        return key
    if not generate:
        raise ServerStartError(
            f"{target.name}: api_key_env: environment variable {target.api_key_env} is not set "
            f"(launcher {target.launcher!r} does not start the server, so its key must be "
            "given; only servers this session launches get a generated one)"
        )
    key = Secret(secrets.token_urlsafe(24))
    os.environ[target.api_key_env] = key
    return key


def auth_headers(target: Target) -> dict[str, str]:
    """The header every client of ``target`` sends (empty when the target has no key)."""
    key = target.api_key()
    return {"Authorization": Secret(f"Bearer {key}")} if key else {}


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """``argv`` with the value of every secret-looking flag masked, and URL credentials cut.

    Any flag whose name mentions a key, token, secret, password, auth, credential or
    cookie counts: a framework's new ``--foo-token`` is masked before anyone adds it.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _value = arg.partition("=")
        if arg.startswith("-") and _SECRET_FLAG.search(flag):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_url(arg) if "://" in arg else arg)
    return out


def redact_url(url: str) -> str:
    """A URL without user, password, query or fragment (where tokens hide)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, *known: str | None) -> str:
    """``text`` with every known secret masked, and ``Bearer`` tokens whatever their value."""
    for secret in known:
        if secret and len(secret) >= _MIN_SECRET_LEN:
            text = text.replace(secret, MASK)
    return re.sub(r"(?i)(bearer\s+)[^\s\"',]+", rf"\g<1>{MASK}", text)

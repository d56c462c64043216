"""A toy language model behind a vLLM-shaped API, for the accuracy gates' negative tests.

Tokens are bytes; each token's log-probability is a fixed function of the token
and its predecessor, so a "baseline" stub and a "candidate" stub agree exactly
unless the candidate is told to degrade: ``shift`` adds that many nats to every
token's NLL (a real loss: perplexity x exp(shift)), ``jitter`` adds zero-mean
per-token noise (no loss, only noise), ``echo=False`` drops the prompt
log-probabilities (a server that cannot measure perplexity).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.stubs.serving import StubHandler, serving


@dataclass(frozen=True)
class Behaviour:
    model: str = "stub"
    shift: float = 0.0
    jitter: float = 0.0
    echo: bool = True


def token_logprob(prev: int, tok: int, b: Behaviour) -> float:
    base = -(0.5 + ((prev * 31 + tok * 17) % 11) / 4)
    noise = b.jitter * math.sin(prev * 12.9898 + tok * 78.233) if b.jitter else 0.0
    return base - b.shift + noise


def _handler(b: Behaviour) -> type[StubHandler]:
    class Handler(StubHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self.reply(200, {})
            elif self.path == "/v1/models":
                self.reply(200, {"data": [{"id": b.model}]})
            else:
                self.reply(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            body = json.loads(self.read_body())
            if self.path == "/tokenize":
                self.reply(200, {"tokens": list(body["prompt"].encode())})
            elif self.path == "/v1/completions":
                prompts = body["prompt"]
                if not prompts or isinstance(prompts[0], int) or isinstance(prompts, str):
                    prompts = [prompts]
                choices = [self._choice(i, p, body) for i, p in enumerate(prompts)]
                self.reply(200, {"choices": choices, "usage": {"completion_tokens": 1}})
            else:
                self.reply(404, {"error": {"message": "not found"}})

        def _choice(self, i: int, prompt: Any, body: dict[str, Any]) -> dict[str, Any]:
            ids = list(prompt.encode()) if isinstance(prompt, str) else list(prompt)
            choice: dict[str, Any] = {"index": i, "text": "x", "finish_reason": "length"}
            if body.get("echo") and body.get("logprobs") is not None and b.echo:
                lps: list[float | None] = [None]
                lps += [token_logprob(p, t, b) for p, t in itertools.pairwise(ids)]
                choice["logprobs"] = {"token_logprobs": [*lps, -1.0]}
            return choice

    return Handler


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    """Run the stub on a free port; yields its base URL."""
    with serving(_handler(behaviour)) as url:
        yield url

"""A replay server: one framework's documented routes, streams, metrics and errors.

It serves what its ``Wire`` and golden files say the framework serves (OpenAI
completions and chat, plain and streamed, with usage; TGI's native
``/generate_stream``; the prompt's log-probabilities where the framework echoes
them, or returns them as TGI's ``/generate`` does; its tokenizer, version, health
and models routes; its metrics page, counting what was served; its golden error
answer to each bad input; its key check), over a toy model: tokens are UTF-8
bytes, each generated token is one letter, ``token_s`` apart, and
log-probabilities are ``tests.stubs.logprob_model``'s fixed function. A contract
test, never a measurement.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.golden import Golden, recorded
from tests.replay import bad_input
from tests.replay.metrics_page import Counts, render
from tests.replay.streams import GoldenShape, NativeTGIShape, OpenAIShape, Shape
from tests.replay.wire import Wire
from tests.stubs.logprob_model import Behaviour, token_logprob
from tests.stubs.serving import StubHandler, serving

BASELINE = Behaviour()  # the toy model a replay server scores prompts with, by default
BOS = 0  # the special token a tokenizer that adds one (TGI's) puts first; no byte is 0
CONTEXT_TOKENS = 2048
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def golden_of(wire: Wire) -> Golden:
    """The golden folder ``wire`` replays (its framework's, at its version)."""
    found = [g for g in recorded(wire.framework) if g.version == wire.version]
    if not found:
        raise LookupError(f"no golden folder tests/golden/{wire.framework}/{wire.version}")
    return found[0]


@dataclass
class ReplayState:
    """What the server has served; read and written under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    prompt_tokens: int = 0
    generated: int = 0
    finished: Counter[str] = field(default_factory=lambda: Counter({"length": 0, "abort": 0}))
    observed: dict[str, list[float]] = field(default_factory=dict)

    def observe(self, **values: float | list[float]) -> None:
        for meaning, v in values.items():
            self.observed.setdefault(meaning, []).extend(v if isinstance(v, list) else [v])

    def counts(self) -> Counts:
        kv = min(1.0, 0.01 * self.running)
        return Counts(
            counters={"prompt_tokens": self.prompt_tokens, "generation_tokens": self.generated},
            finished=dict(self.finished),
            gauges={"running": self.running, "waiting": 0, "kv_cache": kv},
            observed={k: list(v) for k, v in self.observed.items()},
        )  # fmt: skip


def _ids(prompt: Any) -> list[int]:
    return list(prompt.encode()) if isinstance(prompt, str) else [int(t) for t in prompt]


def _prompts(prompt: Any) -> list[Any]:
    """A completion's prompt as a batch: a text, an id list, or a list of either."""
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and _is_id(prompt[0])):
        return [prompt]
    return list(prompt) if isinstance(prompt, list) else [prompt]


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _letter(i: int) -> str:
    return chr(ord("a") + i % 26)


class Replay:
    """One replay server's behaviour; ``serve`` runs it on a port."""

    def __init__(self, wire: Wire, served_name: str, *, key: str | None = None,
                 token_s: float = 0.002, model: Behaviour = BASELINE) -> None:  # fmt: skip
        self.wire = wire
        self.model = model
        self.golden = golden_of(wire)
        self.served_name = served_name
        self.key = key
        self.token_s = token_s
        self.state = ReplayState()
        self.errors = {e.case: e for e in self.golden.errors()}
        raw = self.golden.stream() or b""
        native = wire.native_stream is not None
        self.native = NativeTGIShape.of(raw) if native else None
        self.completion_shape: Shape = OpenAIShape(chat=False) if native else GoldenShape.of(raw)
        self.chat_shape: Shape = OpenAIShape(chat=True)
        page = self.golden.metrics()
        recorded_as = self.golden.expected().get("served_name")
        if page is not None and recorded_as:  # its model label names the replay's model
            page = page.replace(f'="{recorded_as}"', f'="{served_name}"')
        self.page = page

    # --- answers ------------------------------------------------------------------------

    def metrics_text(self) -> str:
        assert self.page is not None
        with self.state.lock:
            counts = self.state.counts()
        return render(self.page, self.wire.metrics, counts, self.wire.finished_label)

    def refusal(self, case: str) -> tuple[int, Any]:
        """The golden answer to ``case``; a 500 saying so where none is documented, so a
        suite that sends it fails rather than passing on an invented answer."""
        found = self.errors.get(case)
        if found is None:
            return 500, {"replay": f"no documented {self.wire.framework} answer for {case}"}
        return found.status, found.body

    def usage(self, prompt_tokens: int, out: int) -> dict[str, Any]:
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": out,
                                 "total_tokens": prompt_tokens + out}  # fmt: skip
        if self.wire.usage_cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
        return usage

    def tokenized(self, text: str) -> Any:
        """The tokenizer route's answer: ids under its key, or (TGI) spans after a BOS."""
        assert self.wire.tokenize is not None
        ids = list(text.encode())
        if not self.wire.tokenize_spans:
            return {self.wire.tokenize[2]: ids}
        spans = [{"id": BOS, "text": "", "start": 0, "stop": 0}]
        spans += [{"id": t, "text": chr(t), "start": k, "stop": k + 1} for k, t in enumerate(ids)]
        return spans

    def logprobs(self, every: list[int]) -> list[float | None]:
        """The toy model's log-probability of each token after its predecessor (first None)."""
        lps: list[float | None] = [None]
        return lps + [token_logprob(p, t, self.model) for p, t in itertools.pairwise(every)]

    def echo_logprobs(self, ids: list[int], generated: list[int]) -> dict[str, Any]:
        every = [*ids, *generated]
        lps = self.logprobs(every)
        tokens = [bytes([t]).decode("latin-1") for t in every]
        top = [{t: lp} for t, lp in zip(tokens[1:], lps[1:], strict=True)]
        return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": [None, *top],
                "text_offset": list(range(len(every)))}  # fmt: skip


def _handler(replay: Replay) -> type[StubHandler]:
    wire, state = replay.wire, replay.state

    class Handler(StubHandler):
        protocol_version = "HTTP/1.1"

        def authorized(self) -> bool:
            if replay.key is None or self.path.split("?")[0] in wire.open_paths:
                return True
            return self.headers.get("Authorization") == f"Bearer {replay.key}"

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if not self.authorized():
                self.reply(*wire.unauthorized)
            elif path == wire.health_path:
                self.reply(200, b"", "text/plain")
            elif path == wire.metrics_path and replay.page is not None:
                self.reply(200, replay.metrics_text(), PROMETHEUS)
            elif path == wire.version_path:
                self.reply(200, {wire.version_key: wire.version})
            elif path == wire.models_path:
                card = {"id": replay.served_name, "object": "model", "owned_by": wire.framework,
                        "max_model_len": CONTEXT_TOKENS}  # fmt: skip
                self.reply(200, {"object": "list", "data": [card]})
            else:
                self.reply(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            raw = self.read_body()
            path = self.path.split("?")[0]
            if not self.authorized():
                self.reply(*wire.unauthorized)
            elif wire.tokenize and path == wire.tokenize[0]:
                text = str(json.loads(raw).get(wire.tokenize[1], ""))
                self.reply(200, replay.tokenized(text))
            elif path in (wire.completions_path, wire.chat_path):
                self.generate(raw, chat=path == wire.chat_path)
            elif path == wire.native_stream:
                self.generate_stream(raw)
            elif path == wire.prefill_path:
                self.generate_native(raw)
            else:
                self.reply(404, {"detail": "Not Found"})

        def generate(self, raw: bytes, *, chat: bool) -> None:
            case, body = bad_input.body_case(self.headers.get("Content-Type"), raw)
            if case is None:
                if (
                    not chat
                    and not wire.token_id_prompts
                    and not isinstance(body.get("prompt"), str)
                ):
                    case = "prompt_wrong_type"
                else:
                    prompts = self.prompt_ids(body, chat)
                    case = bad_input.field_case(
                        body, chat=chat,
                        served_name=None if wire.serves_any_model else replay.served_name,
                        context_tokens=CONTEXT_TOKENS, prompt_tokens=max(map(len, prompts)),
                    )  # fmt: skip
            if case is not None:
                self.reply(*replay.refusal(case))
                return
            if body.get("stream"):
                self.stream_one(body, prompts[0], chat)
            else:
                self.answer(body, prompts, chat)

        def prompt_ids(self, body: dict[str, Any], chat: bool) -> list[list[int]]:
            if chat:
                text = "".join(str(m.get("content", "")) for m in body.get("messages") or []
                               if isinstance(m, dict))  # fmt: skip
                return [_ids(text)]
            try:
                return [_ids(p) for p in _prompts(body.get("prompt"))] or [[]]
            except (TypeError, ValueError, AttributeError):
                return [[]]

        def produce(self, out: int) -> tuple[list[int], float]:
            """A non-streamed answer's ``out`` tokens, ``token_s`` each, while the request
            counts as running (``served`` ends it), and the seconds that took."""
            started = time.perf_counter()
            with state.lock:
                state.running += 1
            time.sleep(replay.token_s * out)
            return [ord(_letter(k)) for k in range(out)], time.perf_counter() - started

        def answer(self, body: dict[str, Any], prompts: list[list[int]], chat: bool) -> None:
            out = int(body.get("max_tokens") or 16)
            generated, elapsed = self.produce(out)
            text = "".join(map(chr, generated))
            choices = []
            for i, ids in enumerate(prompts):
                if chat:
                    choices.append({"index": i, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "length"})  # fmt: skip
                    continue
                choice: dict[str, Any] = {"index": i, "text": text, "logprobs": None,
                                          "finish_reason": "length"}  # fmt: skip
                if body.get("echo") and body.get("logprobs") is not None and wire.echo_logprobs:
                    choice["logprobs"] = replay.echo_logprobs(ids, generated)
                    choice["text"] = bytes(ids).decode("latin-1") + text
                choices.append(choice)
            prompt_tokens, out_tokens = sum(map(len, prompts)), out * len(prompts)
            self.served(prompt_tokens, out_tokens, elapsed, elapsed, [])
            kind = "chat.completion" if chat else "text_completion"
            usage = replay.usage(prompt_tokens, out_tokens)
            self.reply(
                200,
                {
                    "id": "replay",
                    "object": kind,
                    "created": int(time.time()),
                    "model": replay.served_name,
                    "choices": choices,
                    "usage": usage,
                },
            )

        def stream_one(self, body: dict[str, Any], ids: list[int], chat: bool) -> None:
            shape = replay.chat_shape if chat else replay.completion_shape
            out = int(body.get("max_tokens") or 16)
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            model = replay.served_name
            texts = [_letter(k) for k in range(out)]
            events = [shape.text(t, model, last=k == out - 1) for k, t in enumerate(texts)]
            tail = shape.tail(model, replay.usage(len(ids), out) if wants_usage else None)
            self.stream_events(ids, events, tail + ([None] if shape.done else []))

        def generate_native(self, raw: bytes) -> None:
            """TGI's non-streamed ``/generate``; the prompt's tokens and log-probabilities in
            ``details.prefill`` with ``decoder_input_details``, where the server keeps them."""
            body = json.loads(raw)
            params = body.get("parameters") or {}
            ids = [BOS, *_ids(str(body.get("inputs", "")))]
            out = int(params.get("max_new_tokens") or 16)
            generated, elapsed = self.produce(out)
            prefill = []
            if params.get("decoder_input_details") and replay.model.echo:
                lps = replay.logprobs([*ids, *generated])[: len(ids)]
                prefill = [{"id": t, "text": chr(t), "logprob": lp}
                           for t, lp in zip(ids, lps, strict=True)]  # fmt: skip
            tokens = [{"id": t, "text": chr(t), "logprob": -0.5, "special": False}
                      for t in generated]  # fmt: skip
            details = {"finish_reason": "length", "generated_tokens": out, "seed": None,
                       "prefill": prefill, "tokens": tokens}  # fmt: skip
            answer: dict[str, Any] = {"generated_text": "".join(map(chr, generated))}
            if params.get("details") or params.get("decoder_input_details"):
                answer["details"] = details
            self.served(len(ids), out, elapsed, elapsed, [])
            self.reply(200, answer)

        def generate_stream(self, raw: bytes) -> None:
            """TGI's native ``/generate_stream``: text in, one event a token (no [DONE])."""
            assert replay.native is not None
            body = json.loads(raw)
            ids = _ids(str(body.get("inputs", "")))
            out = int((body.get("parameters") or {}).get("max_new_tokens") or 16)
            texts = [_letter(k) for k in range(out)]
            details = {"finish_reason": "length", "generated_tokens": out, "seed": None,
                       "input_length": len(ids)}  # fmt: skip
            events = [replay.native.event(k + 1, t, generated="".join(texts) if k == out - 1
                                          else None, details=details if k == out - 1 else None)
                      for k, t in enumerate(texts)]  # fmt: skip
            self.stream_events(ids, events, [])

        def stream_events(self, ids: list[int], tokens: list[dict[str, Any]],
                          tail: list[dict[str, Any] | None]) -> None:  # fmt: skip
            """One event a generated token, ``token_s`` apart, then the tail (None: [DONE])."""
            started = time.perf_counter()
            with state.lock:
                state.running += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            sent: list[float] = []
            for k, event in enumerate(tokens):
                time.sleep(replay.token_s)
                if not self.send(event):
                    with state.lock:  # counted as the frameworks count an aborted request
                        state.running -= 1
                        state.prompt_tokens += len(ids)
                        state.generated += k + 1
                        state.finished["abort"] += 1
                    return
                sent.append(time.perf_counter())
            for event in tail:
                self.send(event)
            gaps = [b - a for a, b in itertools.pairwise(sent)]
            self.served(len(ids), len(tokens), sent[0] - started, sent[-1] - started, gaps)

        def served(self, prompt_tokens: int, out: int, ttft: float, e2e: float,
                   gaps: list[float]) -> None:  # fmt: skip
            with state.lock:
                state.running -= 1
                state.prompt_tokens += prompt_tokens
                state.generated += out
                state.finished["length"] += 1
                tpot = (e2e - ttft) / (out - 1) if out > 1 else 0.0
                state.observe(ttft=ttft, e2e=e2e, inter_token=gaps, tpot=tpot, queue=0.0,
                              input_length=prompt_tokens, output_length=out)  # fmt: skip

        def send(self, event: dict[str, Any] | None) -> bool:
            """One SSE event (None: ``[DONE]``); False when the client has hung up."""
            return self.send_event("[DONE]" if event is None else json.dumps(event))

    return Handler


@contextmanager
def serve(wire: Wire, served_name: str, **kw: Any) -> Iterator[str]:
    """Run a replay of ``wire`` on a free port for the block; yields its base URL."""
    with serving(_handler(Replay(wire, served_name, **kw))) as url:
        yield url

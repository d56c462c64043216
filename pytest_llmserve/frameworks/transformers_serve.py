"""Hugging Face ``transformers serve``: the reference implementation, as a serving framework.

It speaks the OpenAI API (``openai_compat``) with these differences, each seen on
transformers 5.17 (on an H200) and 5.19 (on CPU, beside vLLM CPU, with ``accelerate``):

- it serves the one model given on its command line, under that exact name (the
  path), and answers 400 to any other ``model``; there is no alias option, so the
  launch spec says the served name;
- ``/v1/models`` does not list that model: it lists the Hugging Face hub cache
  (500 when there is no cache folder, an empty list when there is one), so the
  readiness probes skip it and the smoke suite reports the gap;
- a request field outside its OpenAI schema gets 422, ``ignore_eos`` included:
  output length is held with ``generation_config`` (``min_new_tokens``) instead
  (dialect ``hf-generation-config``);
- text prompts only (``prompt must be a string``) and no ``/tokenize``, so
  token-id workloads are not measurable; ``echo``/``logprobs`` are ignored, so
  prompt log-probabilities (perplexity) are not measurable either;
- streams end without ``data: [DONE]`` (the usage chunk is last);
- continuous batching fixes its logits processors at the first request: a server
  whose first request asked no ``min_new_tokens`` ignores every later one's
  (``readiness_request`` asks one);
- no ``/metrics``, no ``/version``, no API key option;
- ``--continuous-batching`` takes a share of the GPU for its KV cache that the
  footprint check exists to catch: about 124 GiB of an H200 by default
  (``--cb-max-memory-percent`` lowers it).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pytest_llmserve.frameworks import transformers_errors
from pytest_llmserve.frameworks.base import ApiPaths, LaunchSpec
from pytest_llmserve.frameworks.contract import ErrorExpectation
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.profile.model import Target

# Our precision → its --dtype. Quantized precisions need bitsandbytes on a GPU
# (--quantization bnb-8bit/bnb-4bit): not mapped until one has been run.
_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_DEVICE = {"cpu": "cpu", "gpu": "cuda"}


class TransformersServe(OpenAICompatible):
    """``transformers serve MODEL --continuous-batching``."""

    name = "transformers"
    paths = ApiPaths(tokenize=None, version=None)
    stream_dialect = "hf-generation-config"
    takes_token_ids = False  # "prompt must be a string"
    lists_served_model = False
    error_schema = "fastapi"  # FastAPI's own {"detail": ...}, from every refusal
    open_paths: tuple[str, ...] = ("/health", "/v1/models")
    distributions = ("transformers",)

    def unsupported_here(self, target: Target) -> str | None:
        if target.precision not in _DTYPE:
            return (
                f"transformers serve: precision {target.precision} is not mapped "
                f"(valid: {', '.join(_DTYPE)})"
            )
        if target.api_key_env:
            return "transformers serve has no API key option: it cannot serve api_key_env"
        if target.served_name:
            return "transformers serve serves a model under its path only: leave served_name out"
        if target.tp * target.pp > 1:
            return "transformers serve runs one process on one device: tp and pp must be 1"
        return None

    def readiness_request(self, served_name: str) -> tuple[str, dict[str, Any]]:
        """One token, asked with a ``min_new_tokens``: continuous batching builds its
        logits processors from the first request it serves, and one built without a
        minimum ignores every later request's (they stop at the first EOS, seen as
        1-token answers). Readiness is that first request on a server we start."""
        config = json.dumps({"max_new_tokens": 1, "min_new_tokens": 1, "do_sample": False})
        body = {"model": served_name, "prompt": "Hello", "generation_config": config}
        return self.paths.completions, body

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        # There is no official image: a container runs the ``transformers`` command.
        main = "from transformers.cli.transformers import main; main()"
        program = ["transformers"] if container else [sys.executable, "-c", main]
        argv = [
            *program,
            "serve", model_path, "--host", host, "--port", str(port),
            "--continuous-batching", "--device", _DEVICE[target.device],
            "--dtype", _DTYPE.get(target.precision, "auto"), "--log-level", "info",
        ]  # fmt: skip
        argv += list(target.args)
        # Offline: a local model must never send it to the hub.
        env = {"HF_HUB_OFFLINE": "1", **target.env_dict()}
        return LaunchSpec(argv=tuple(argv), env=env, served_as=model_path)

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return transformers_errors.EXPECTED

    def error_body_problems(self, body: Any) -> list[str]:
        """FastAPI's ``{"detail": ...}``: what it answers for every refusal."""
        if isinstance(body, dict) and body.get("detail"):
            return []
        return [f'expected FastAPI\'s {{"detail": ...}}, got {str(body)[:120]}']

"""A bridge to lm-evaluation-harness: its tasks scored through a target's own server.

For users who have lm-eval's datasets (or their own task YAMLs): lm-eval's
``local-completions`` model is pointed at the target's ``/v1/completions``, so the
score is the served model's, through the same API and server as every other
check. Requests are sent as token ids, tokenized by the model's own tokenizer:
from the checkpoint folder when we launched the server (no hub access), else by
the server itself (``tokenizer_backend=remote``, its ``/tokenize``).
Loglikelihood tasks need prompt log-probabilities (echo), which lm-eval asks for.

lm-eval is optional (``pip install 'pytest-llmserve[lmeval]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_llmserve.launch.auth import auth_headers
from pytest_llmserve.launch.server import Server


class LmEvalMissing(RuntimeError):
    """lm-evaluation-harness is not installed."""


def model_args(
    server: Server, *, num_concurrent: int = 4, max_length: int | None = None
) -> dict[str, Any]:
    """``local-completions`` arguments for this target's server."""
    target = server.target
    args: dict[str, Any] = {
        "model": server.served_name,
        "base_url": server.base_url + server.framework.paths.completions,
        "num_concurrent": num_concurrent,
        "max_retries": 3,
        "tokenized_requests": True,
        "max_length": max_length or target.max_model_len or 2048,
    }
    local = server.local_model
    if local is not None and local.is_dir():  # an HF checkpoint folder has its tokenizer
        args |= {"tokenizer_backend": "huggingface", "tokenizer": str(local)}
    else:
        args |= {"tokenizer_backend": "remote"}
    key = target.api_key()
    if key:
        # local-completions sends ``header`` with its completion requests (else a Bearer of
        # OPENAI_API_KEY); ``auth_token`` only reaches its remote tokenizer. Both values are
        # Secrets, so lm-eval's "Initializing ... with arguments" log line shows them masked.
        args["auth_token"] = key
        args["header"] = auth_headers(target)
    return args


def evaluate(
    server: Server,
    tasks: Sequence[str],
    *,
    include_path: str | Path | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    num_concurrent: int = 4,
) -> dict[str, Any]:
    """Run lm-eval ``tasks`` against the target; lm-eval's results dict (``results[task]``)."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise LmEvalMissing(
            "lm-evaluation-harness is not installed (pip install 'pytest-llmserve[lmeval]')"
        ) from exc
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    out = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=model_args(server, num_concurrent=num_concurrent),
        tasks=list(tasks),
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=False,
        bootstrap_iters=1000,
    )
    if out is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results")
    config = out.get("config")
    if isinstance(config, dict) and isinstance(config.get("model_args"), dict):
        # lm-eval echoes its model_args into the results: keep the key out of anything saved.
        config["model_args"] = {k: v for k, v in config["model_args"].items()
                                if k not in ("auth_token", "header")}  # fmt: skip
    return dict(out)


def metric(results: dict[str, Any], task: str, name: str = "acc") -> tuple[float, float | None]:
    """(value, standard error) of ``name`` for ``task`` from lm-eval's results."""
    row = results["results"][task]
    value = row.get(f"{name},none", row.get(name))
    if value is None:
        raise KeyError(f"{task} has no metric {name!r} (has: {', '.join(sorted(row))})")
    stderr = row.get(f"{name}_stderr,none")
    return float(value), None if stderr in (None, "N/A") else float(stderr)

"""lm-evaluation-harness through a real vLLM server, on a task defined on a local file.

The task is built from our own multiple-choice items, so the bridge's accuracy can
be checked against our scorer's on the same items through the same server: both
pick the choice with the highest summed log-probability after the context. The
server takes an API key (generated at launch): without it on its completion
requests, local-completions retries every 401 and then gives up, so a score coming
back at all shows the key went with them — and it must not be in the results.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.measure import lm_eval_bridge, perplexity, tasks
from pytest_llmserve.measure.task_items import ChoiceItem, builtin_items
from tests.live.targets import baseline_target

TASK = "llmserve_local_mc"
KEY_ENV = "LLMSERVE_LIVE_BRIDGE_KEY"


def _write_task(folder: Path, items: list[ChoiceItem]) -> None:
    rows = [{"question": it.context, "choices": [c.removeprefix(" ") for c in it.choices],
             "answer": it.answer} for it in items]  # fmt: skip
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / f"{TASK}.yaml").write_text(
        textwrap.dedent(
            f"""
            task: {TASK}
            dataset_path: json
            dataset_kwargs:
              data_files:
                test: {data}
            test_split: test
            output_type: multiple_choice
            doc_to_text: "{{{{question}}}}"
            doc_to_choice: "{{{{choices}}}}"
            doc_to_target: answer
            target_delimiter: " "
            metric_list:
              - metric: acc
            """
        ),
        encoding="utf-8",
    )


def test_lm_eval_local_task_matches_our_scorer(
    baseline_checkpoint: Path,
    vllm: VLLM,
    tmp_path: Path,
    started: list[Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if importlib.util.find_spec("lm_eval") is None:
        pytest.skip("lm-eval is not installed (pip install 'pytest-llmserve[lmeval]')")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(KEY_ENV, raising=False)  # the launch generates one
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # lm-eval's fallback: not used
    wanted = ("compare_mc", "month_after_mc")
    items = [it for it in builtin_items(0) if isinstance(it, ChoiceItem) and it.task in wanted]
    _write_task(tmp_path, items)
    target = baseline_target("live-lmeval", baseline_checkpoint, api_key_env=KEY_ENV)
    server = ProcessServer.start(target, vllm, str(baseline_checkpoint), tmp_path / "s.log")
    started.append(server)
    assert target.api_key(), "the launch should have generated a key"

    args = lm_eval_bridge.model_args(server)
    assert args["base_url"] == f"{server.base_url}/v1/completions"
    assert args["tokenizer"] == str(baseline_checkpoint)
    results = lm_eval_bridge.evaluate(server, [TASK], include_path=tmp_path)
    acc, stderr = lm_eval_bridge.metric(results, TASK)

    assert str(target.api_key()) not in str(results)
    endpoint = Endpoint.of(server)
    tokenize = perplexity.ServerTokenizer(endpoint)
    ours = tasks.run(endpoint, tasks.encode(items, tokenize))
    tokenize.close()
    assert ours.score is not None
    assert acc == pytest.approx(ours.score, abs=0.05), (acc, ours.score)
    assert stderr is not None
    assert stderr > 0

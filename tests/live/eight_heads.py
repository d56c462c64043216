"""SmolLM2 with eight attention heads: a model vLLM can split over two tensor-parallel ranks.

SmolLM2-135M has 9 query heads over 3 KV heads, so no tensor-parallel size above 1
divides it. This drops the ninth query head of every layer (its rows of q_proj, its
columns of o_proj) and gives each of the 8 kept heads its own copy of the KV head it
was trained with (3 KV heads repeated to 8), so heads 1-8 compute exactly what they
did in the trained model; only the ninth head's contribution is gone. For a
throughput scaling test the weights only need to be a real model's shapes and
numbers; this keeps them close to the trained ones. Built in seconds from the
embedded checkpoint into a folder the caller gives (a test's cache), never into git.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HEADS = 8
# Bump when the recipe changes: the folder is reused while this and the source match.
RECIPE = 1


def eight_head_model(source: Path, out: Path) -> Path:
    """The 8-head model in ``out`` (reused when built from the same ``source`` and recipe)."""
    stamp = out / "llmserve-eight-heads.json"
    key = {"source": str(source.resolve()), "recipe": RECIPE}
    if stamp.is_file() and json.loads(stamp.read_text()) == key:
        return out
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "config.json").read_text())
    heads, kv_heads, dim = (
        config["num_attention_heads"],
        config["num_key_value_heads"],
        config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
    )
    group = heads // kv_heads
    kv_of_head = torch.tensor([h // group for h in range(HEADS)])
    rows = torch.arange(HEADS * dim)  # the kept heads' rows, in order
    kv_rows = (kv_of_head[:, None] * dim + torch.arange(dim)[None, :]).reshape(-1)
    weights = load_file(str(source / "model.safetensors"))
    pruned = {}
    for name, w in weights.items():
        if name.endswith("self_attn.q_proj.weight"):
            w = w[rows]
        elif name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight")):
            w = w[kv_rows]
        elif name.endswith("self_attn.o_proj.weight"):
            w = w[:, rows]
        pruned[name] = w.contiguous()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in source.iterdir():
        if f.is_file() and f.suffix in (".json", ".jinja") and not f.name.startswith("llmserve"):
            shutil.copy2(f, out / f.name)
    config.update(num_attention_heads=HEADS, num_key_value_heads=HEADS, head_dim=dim)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(pruned, str(out / "model.safetensors"), metadata={"format": "pt"})
    stamp.write_text(json.dumps(key))
    return out

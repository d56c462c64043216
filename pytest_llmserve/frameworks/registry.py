"""Framework name → implementation: the one place that lists them.

The built-in modules are registered here; other packages add theirs through the
``pytest_llmserve_frameworks`` hook (``hookspec.py``), which the plugin asks once
at configure time, before the profile is read, so profiles may name them.
"""

from __future__ import annotations

from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.frameworks.llamacpp import LlamaCpp
from pytest_llmserve.frameworks.sglang import SGLang
from pytest_llmserve.frameworks.tgi import TGI
from pytest_llmserve.frameworks.transformers_serve import TransformersServe
from pytest_llmserve.frameworks.trtllm import TensorRTLLM
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.registry import Registry

FRAMEWORKS: Registry[Framework] = Registry(
    "framework", (VLLM(), LlamaCpp(), TransformersServe(), SGLang(), TensorRTLLM(), TGI())
)

names = FRAMEWORKS.names
get = FRAMEWORKS.get
install = FRAMEWORKS.install

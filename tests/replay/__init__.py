"""Replay servers: a framework we cannot run here, answering in its documented wire format.

TGI, SGLang and TensorRT-LLM need GPU builds that neither machine of this project
can run, so each framework module is held to the framework's documented answers:
its golden files (``tests/golden/<framework>/<version>/``, each naming the source
it was written from) and a replay server built from them, against which the whole
readiness checklist runs in the pytester tier (``tests/plugin/test_replay_checklist.py``).

A replay server is a contract test, never a measurement: its tokens are bytes, its
"model" is a fixed function (``tests/stubs/logprob_model.py``), its speed is a
constant. What it shows is that every suite runs against each dialect and that a
module's claims (paths, streaming, metric names and types, error statuses and
bodies, prompt log-probabilities) agree with the documented format.
"""

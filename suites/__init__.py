"""The readiness suites; installed as ``pytest_llmserve.suites`` (see pyproject.toml).

Run them from a checkout with ``pytest suites``, from an installed package with
``pytest --pyargs pytest_llmserve.suites``.
"""

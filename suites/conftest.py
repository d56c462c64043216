"""The readiness suites need only the pytest-llmserve plugin (installed via its entry point).

They run from a checkout (``pytest suites``) and from an installed package, where
this folder is ``pytest_llmserve.suites`` (``pytest --pyargs pytest_llmserve.suites``),
so nothing here may depend on the checkout: no paths outside this folder, no
``pytest_plugins`` (not allowed in a conftest below the rootdir, which this one is
when run with ``--pyargs``).
"""

"""Hooks other packages implement to extend pytest-llmserve.

Both are asked once, in ``pytest_configure``, before the profile is read, so a
profile may name what they add. Implement them in a plugin registered through
the ``pytest11`` entry point, or in the root ``conftest.py`` (a conftest in a
sub-folder is loaded too late). Each returns a list; for a name given twice the
first answer wins, and the built-ins come last, so a plugin may replace one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmserve.frameworks.base import Framework
    from pytest_llmserve.launch.launcher import Launcher


@pytest.hookspec
def pytest_llmserve_frameworks(config: pytest.Config) -> Sequence[Framework]:
    """Framework modules to add: each one a ``Framework`` (``frameworks/base.py``).

    An OpenAI-compatible server needs only its name and argv; everything else has
    a default in ``OpenAICompatible`` that it overrides where it differs::

        # conftest.py at the project root
        import sys
        from pytest_llmserve.frameworks.base import LaunchSpec
        from pytest_llmserve.frameworks.openai_compat import OpenAICompatible


        class MyServer(OpenAICompatible):
            name = "myserver"
            paths = OpenAICompatible.paths  # or ApiPaths(health="/ping", ...)

            def launch_spec(self, target, model_path, host, port, *, container=False):
                # container: what its image takes after its ENTRYPOINT (launcher "docker")
                program = () if container else (sys.executable, "-m", "myserver")
                argv = (*program, model_path, "--host", host, "--port", str(port))
                return LaunchSpec(argv=argv)


        def pytest_llmserve_frameworks(config):
            return [MyServer()]

    A profile then says ``framework = "myserver"``, and ``-m myserver`` selects it.
    """
    raise NotImplementedError


@pytest.hookspec
def pytest_llmserve_launchers(config: pytest.Config) -> Sequence[Launcher]:
    """Launchers to add: each one a ``Launcher`` (``launch/launcher.py``).

    A launcher owns the target-table keys only it reads, turns them into its typed
    settings, and spawns a server that ``launch.start`` then makes ready::

        # conftest.py at the project root
        from dataclasses import dataclass
        from pytest_llmserve.errors import ProfileError
        from pytest_llmserve.launch.external import ExternalServer


        @dataclass(frozen=True)
        class Gateway:
            url: str


        class GatewayLauncher:
            name = "gateway"
            keys = ("gateway",)
            launches = False
            runs_here = False

            def settings(self, values, where):
                if "gateway" not in values:
                    raise ProfileError(f"{where}: gateway: required with launcher 'gateway'")
                return Gateway(url=f"https://{values['gateway']}.example.internal")

            def spawn(self, target, framework, ctx):
                return ExternalServer(target, framework)  # reads target.launch.url

            def retry_after(self, log_tail):
                return False

            def sweep_orphans(self):
                return []


        def pytest_llmserve_launchers(config):
            return [GatewayLauncher()]

    A profile then says ``launcher = "gateway"`` and ``gateway = "staging"``.
    """
    raise NotImplementedError

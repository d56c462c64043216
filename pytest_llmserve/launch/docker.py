"""The docker launcher: a target's server as a container, through the docker SDK.

The framework gives the arguments its official image takes after the image's
ENTRYPOINT (``launch_spec(..., container=True)``); this module decides everything
about the container. The model is mounted read-only at the same path it has here, so
every check that reads it (checkpoint size, precision config, the GGUF's hash) reads
what the server loads. The container's output is streamed into the session's log
file by a thread, so the startup log, engine facts and failure tails read as for a
process. Every container carries labels naming the owning session, this host, the
server and the target (``launch.labels``'s owner label): a later session removes the
containers of sessions that are gone, never those of one still running.

An API key never enters the container's config, where ``docker inspect`` would show
it to anyone with the engine's socket: the variable that holds it is written to a
0600 file in a private folder, mounted read-only, and a ``/bin/sh`` wrapper exports
it before it execs the image's entrypoint. The config shows only the variable's name
and the file's path.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_llmserve.errors import ProfileError, ServerStartError
from pytest_llmserve.frameworks.base import Framework, LaunchSpec
from pytest_llmserve.launch import auth, docker_engine, gpu_slots
from pytest_llmserve.launch.docker_settings import DockerSettings, parse
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.local import HOST, LocalServer
from pytest_llmserve.launch.ports import free_port
from pytest_llmserve.launch.server import Server
from pytest_llmserve.launch.start import start_server
from pytest_llmserve.measure.memory import ServerMemory, server_memory
from pytest_llmserve.profile.model import Target

SECRETS_DIR = "/run/llmserve-secrets"  # where the key files are mounted in the container
# Exports each mounted file as the variable it is named after, then runs the server.
_KEY_WRAPPER = (
    f'for f in {SECRETS_DIR}/*; do IFS= read -r v < "$f"; export "${{f##*/}}=$v"; done; exec "$@"'
)
_PORT_TAKEN = ("address already in use", "errno 98", "couldn't bind")


class DockerLauncher:
    name = "docker"
    keys: tuple[str, ...] = ("docker",)
    launches = True
    # The engine runs on this machine: the model is mounted from here, and this
    # machine's limits and GPU leases apply.
    runs_here = True

    def settings(self, values: Mapping[str, Any], where: str) -> DockerSettings:
        if "docker" not in values:
            raise ProfileError(
                f'{where}: docker: required when launcher is "docker", e.g. '
                'docker = { image = "vllm/vllm-openai:v0.31.0", gpus = "all" }'
            )
        return parse(values["docker"], where)

    def spawn(self, target: Target, framework: Framework, ctx: StartContext) -> DockerServer:
        server = DockerServer(target, framework, ctx.model_path(target), ctx.log_path(target))
        server.launch()
        return server

    def retry_after(self, log_tail: str) -> bool:
        # On the host network, another process took the port between our probe and the bind.
        return any(s in log_tail.lower() for s in _PORT_TAKEN)

    def sweep_orphans(self) -> list[str]:
        return docker_engine.sweep_orphans()


class DockerServer(LocalServer):
    """One container for one target; ``launch.start.start_server`` makes it ready."""

    def __init__(
        self, target: Target, framework: Framework, model_path: str, log_path: Path
    ) -> None:
        settings = target.launch
        assert isinstance(settings, DockerSettings), "docker target without its settings"
        super().__init__(target, framework, model_path, log_path)
        self.settings = settings
        self._engine: Any = None
        self._container: Any = None
        self._logs: threading.Thread | None = None
        self._secrets: Path | None = None

    @classmethod
    def start(cls, target: Target, framework: Framework, model_path: str, log_path: Path) -> Server:
        """One target through the shared start sequence, as a container serving this model."""
        ctx = StartContext(model_path=lambda _t: model_path, log_path=lambda _t: log_path)
        return start_server(DockerLauncher(), target, framework, ctx)

    @property
    def container_id(self) -> str | None:
        return None if self._container is None else str(self._container.id)

    def launch(self) -> None:
        """Find (or pull) the image, then run the container; nothing is left on failure."""
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = docker_engine.client(self.target.name)
        try:
            with self.log_path.open("ab") as log:
                self._log_start = log.tell()
                entrypoint = docker_engine.ensure_image(
                    self._engine, self.settings, log, self.target.name
                )
                self._run(self._engine, entrypoint, log)
        except BaseException:
            self.stop()
            raise

    def _run(self, client: Any, image_entrypoint: tuple[str, ...], log: Any) -> None:
        port = free_port(HOST)
        self.base_url = f"http://{HOST}:{port}"
        bridge = self.settings.network == "bridge"
        inner = self.settings.container_port or port
        spec = self.framework.launch_spec(
            self.target, self.model_path, "0.0.0.0" if bridge else HOST,
            inner if bridge else port, container=True,
        )  # fmt: skip
        self.served_name = spec.served_as or self.served_name
        env, secret = self._environment(spec)
        entrypoint, command = self._command(spec, secret, image_entrypoint)
        kwargs = self._run_kwargs(env, secret, port, inner)
        log.write(
            f"# llmserve: docker run {self.settings.image} (container "
            f"llmserve-{self.target.name}-{self.server_id}): "
            f"{shlex.join(auth.redact_argv([*entrypoint, *command]))}\n".encode()
        )
        log.flush()
        self.started_at = time.monotonic()
        try:
            self._container = client.containers.run(
                self.settings.image, command=command, entrypoint=list(entrypoint), **kwargs
            )
        except Exception as exc:
            raise ServerStartError(
                f"{self.target.name}: docker could not run {self.settings.image}: "
                f"{type(exc).__name__}: {auth.redact(str(exc), self.target.api_key())}"
            ) from None
        name = f"llmserve-logs-{self.target.name}"
        self._logs = threading.Thread(
            target=self._follow_logs, args=(self._container,), daemon=True, name=name
        )
        self._logs.start()

    def _environment(self, spec: LaunchSpec) -> tuple[dict[str, str], dict[str, str]]:
        """The container's environment, and apart from it the variables that hold the key."""
        env = {**spec.env, **gpu_slots.device_env(self.target)}
        # A leased GPU becomes a device request: inside, the devices are renumbered from 0.
        env.pop(gpu_slots.VISIBLE, None)
        key = self.target.api_key()
        secret = {k: v for k, v in env.items() if key and v == key}
        return {k: v for k, v in env.items() if k not in secret}, secret

    def _command(
        self, spec: LaunchSpec, secret: Mapping[str, str], image_entrypoint: tuple[str, ...]
    ) -> tuple[tuple[str, ...], list[str]]:
        entrypoint = self.settings.entrypoint or image_entrypoint
        if not entrypoint and spec.argv[:1] and spec.argv[0].startswith("-"):
            raise ServerStartError(
                f"{self.target.name}: image {self.settings.image} has no ENTRYPOINT, and "
                f"{self.framework.name}'s container argv is only arguments ({spec.argv[0]} ...): "
                'set docker.entrypoint to the program that serves (e.g. ["vllm", "serve"])'
            )
        if not secret:
            return entrypoint, list(spec.argv)
        return ("/bin/sh", "-c", _KEY_WRAPPER, "llmserve-key"), [*entrypoint, *spec.argv]

    def _run_kwargs(
        self, env: dict[str, str], secret: Mapping[str, str], port: int, inner: int
    ) -> dict[str, Any]:
        s = self.settings
        kwargs: dict[str, Any] = {
            **s.run_kwargs(),
            "name": f"llmserve-{self.target.name}-{self.server_id}",
            "detach": True,
            "environment": env,
            "labels": docker_engine.labels_for(self.server_id, self.target.name),
            "volumes": self._volumes(secret),
        }
        if s.network == "host":
            kwargs["network_mode"] = "host"
        else:
            kwargs["ports"] = {f"{inner}/tcp": (HOST, port)}
        if requests := docker_engine.device_requests(s.gpus, self.target):
            kwargs["device_requests"] = requests
        optional = {"shm_size": s.shm_size, "ipc_mode": s.ipc_mode, "user": s.user}
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if s.ulimits:
            kwargs["ulimits"] = docker_engine.ulimits(s.ulimits)
        return kwargs

    def _volumes(self, secret: Mapping[str, str]) -> dict[str, dict[str, str]]:
        volumes = {v.host: {"bind": v.container, "mode": v.mode} for v in self.settings.volumes}
        model = self.local_model
        if model is not None:
            folder = model if model.is_dir() else model.parent
            volumes[str(folder)] = {"bind": str(folder), "mode": "ro"}
        if secret:
            self._secrets = Path(tempfile.mkdtemp(prefix="llmserve-key-"))  # mode 0700
            for name, value in secret.items():
                path = self._secrets / name
                path.touch(mode=0o600)
                path.write_text(value + "\n")
            volumes[str(self._secrets)] = {"bind": SECRETS_DIR, "mode": "ro"}
        return volumes

    def _follow_logs(self, container: Any) -> None:
        """Append the container's output to the log file until the container stops."""
        assert self.log_path is not None
        with contextlib.suppress(Exception), self.log_path.open("ab") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()

    def exited(self) -> str | None:
        if self._container is None:
            return "never started"
        return docker_engine.exit_reason(self._container)

    def log_tail(self, lines: int = 40) -> str:
        if self._logs is not None and self.exited() is not None:
            self._logs.join(timeout=2.0)  # a crashed container's last words, written out
        return super().log_tail(lines)

    def pids(self) -> list[int]:
        """The container's processes as this machine numbers them (NVML and psutil's)."""
        return [] if self._container is None else docker_engine.host_pids(self._container)

    def memory(self) -> ServerMemory | None:
        """The container's own figure; RSS and USS of its processes beside it where readable."""
        if self._container is None:
            return None
        charged = docker_engine.memory_bytes(self._container)
        pids = self.pids()
        by_process = server_memory(pids) if pids else None
        if charged is None:
            return by_process
        if by_process is None:
            return ServerMemory((), None, 0, None, container_bytes=charged)
        return ServerMemory(by_process.pids, None, by_process.rss_bytes, by_process.uss_bytes,
                            by_process.missing, container_bytes=charged)  # fmt: skip

    def stop(self) -> None:
        container, self._container = self._container, None
        try:
            if container is not None:
                docker_engine.remove(container, self.settings.stop_timeout_s)
            if self._logs is not None:
                self._logs.join(timeout=5.0)
        finally:
            if self._secrets is not None:
                shutil.rmtree(self._secrets, ignore_errors=True)
                self._secrets = None
            if self._engine is not None:
                self._engine.close()
                self._engine = None

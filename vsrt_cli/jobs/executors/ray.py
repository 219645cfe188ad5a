"""Clips of a batch, and chunks of its long clips, spread over Ray workers: one actor per GPU
(``num_gpus=1``: Ray sets ``CUDA_VISIBLE_DEVICES``) or per CPU worker, each loading the model
once and running clips and chunks one after another. Progress streams back to the driver (streaming-generator actor calls); a worker
that dies is replaced by a new actor and its clip run again (up to ``ATTEMPTS`` times); Ctrl-C kills every worker and removes what they
left half-written. Ray is the optional extra ``vsrt[ray]``, imported only here and only when used.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vsrt_cli.errors import ConfigError

EXTRA = 'pip install "vsrt[ray]"'
ATTEMPTS = 3  # runs of one clip before it is reported failed (a worker killed mid-clip)
CONNECT_TIMEOUT = 2.0


def import_ray() -> Any:
    """``ray``, or one line naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers, --devices and --ray need Ray, an optional extra: {EXTRA}") from None
    return ray


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse in ``timeout`` seconds a ``HOST:PORT`` where nothing listens (``auto`` is Ray's
    own look-up of a running cluster)."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray {address}: give auto or HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(
            f"--ray {address}: cannot reach a Ray head there ({reason} within {timeout:g} s); "
            "check the address and that `ray start --head` runs on that machine"
        ) from None


@dataclass(frozen=True)
class RayConfig:
    """``address``: None starts a Ray instance on this machine (``gpus`` GPUs, or ``workers``
    CPU workers), else ``auto`` or ``HOST:PORT`` of a running cluster. ``gpus`` > 0: one worker
    per GPU; otherwise ``workers`` CPU workers of ``threads`` torch threads each."""

    address: str | None = None
    workers: int = 1
    gpus: int = 0
    threads: int = 1
    fake_gpus: bool = False  # tests: GPU resources on a machine without any (the work runs on the CPU)
    choice: Any = None  # a jobs.build.DeviceChoice each worker resolves for its own card (None: the template's)


def _versions() -> tuple[str, str]:
    import torch

    from vsrt_cli import __version__

    return __version__, torch.__version__


def check_versions(ray: Any) -> None:
    """One task on every node: all must run this vsrt and this torch."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_versions)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    answers = ray.get([
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote() for n in nodes
    ])
    mine = _versions()
    wrong = [f"{n.get('NodeManagerAddress', n['NodeID'])} has vsrt {v} / torch {t}"
             for n, (v, t) in zip(nodes, answers) if (v, t) != mine]
    if wrong:
        raise ConfigError(
            f"every Ray node must run vsrt {mine[0]} and torch {mine[1]} (as here), but {'; '.join(wrong)}; "
            "install the same versions there"
        )


class _Worker:
    """One Ray actor: the model loaded once, clips run one after another. ``device`` ``cuda``
    is the card Ray gave it (it sets ``CUDA_VISIBLE_DEVICES``), resolved here with its index;
    with a ``choice``, the precision and tiling left to vsrt are resolved for that card too."""

    def __init__(self, model: Any, threads: int, device: str, choice: Any = None) -> None:
        import torch

        from vsrt_cli.engine.runtime import resolve_device

        torch.set_num_threads(max(1, threads))
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.choice = choice
        self._resolved: dict = {}

    def job_for(self, job: Any) -> Any:
        """``job`` on this worker's card, as :func:`~vsrt_cli.jobs.build.for_device` resolves it
        (once per schedule and precision: every clip gets the same tiling)."""
        from dataclasses import replace

        from vsrt_cli.jobs.build import for_device

        if self.choice is None:
            return replace(job, device=self.device)
        key = (job.schedule, job.precision)
        if key not in self._resolved:
            mine = for_device(self.model, job, self.device, self.choice)
            self._resolved[key] = (mine.precision, mine.schedule)
        precision, schedule = self._resolved[key]
        return replace(job, device=self.device, precision=precision, schedule=schedule)

    def pid(self) -> tuple[str, int]:
        from vsrt_cli.io.outputs import host

        return host(), os.getpid()

    def run(self, unit: Any, template: Any, record: Any) -> Iterator[tuple]:
        """One clip or chunk: yields ``("progress", done, total)``, ``("notice", text, note)``, then
        ``("result", ClipResult | ChunkFinished)``."""
        from vsrt_cli.jobs.executors.local import run_unit
        from vsrt_cli.jobs.executors.units import ChunkProgress
        from vsrt_cli.engine.pipeline import Notice, Progress

        from dataclasses import replace

        from vsrt_cli.jobs.executors.units import ChunkTask

        if isinstance(unit, ChunkTask):
            unit = replace(unit, plan=replace(unit.plan, job=self.job_for(unit.plan.job)))
        work = run_unit(self.model, unit, self.job_for(template), record)
        try:
            while True:
                event = next(work)
                if isinstance(event, (Progress, ChunkProgress)):
                    yield ("progress", event.done, getattr(event, "total", None))
                elif isinstance(event, Notice):
                    yield ("notice", event.message, event.note)
        except StopIteration as stop:
            yield ("result", stop.value)


_DONE = object()


class RayExecutor:
    """``run(model, clips, template, record)``: see :mod:`vsrt_cli.jobs.executors`."""

    def __init__(self, config: RayConfig) -> None:
        self.config = config

    def _start(self, ray: Any) -> None:
        cfg = self.config
        if cfg.address is not None:
            check_address(cfg.address)
            try:
                ray.init(address=cfg.address, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
                from vsrt_cli.jobs.executors.ray_auth import refused

                raise refused(cfg.address, exc) from None
        else:
            cpus = max(cfg.workers, cfg.gpus, 1)
            from vsrt_cli.jobs.executors.ray_auth import require_token

            self._auth = require_token(ray, EXTRA)  # given back when the instance is shut down
            ray.init(num_cpus=cpus, num_gpus=max(cfg.gpus, 0), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        check_versions(ray)

    def _shutdown(self, ray: Any) -> None:
        ray.shutdown()
        saved, self._auth = getattr(self, "_auth", None), None
        if saved is not None:
            from vsrt_cli.jobs.executors.ray_auth import restore_auth

            restore_auth(saved)

    def run(self, model: Any, units: list, template: Any, record: Any) -> Iterator[Any]:
        from vsrt_cli.jobs.executors.units import ChunkFinished, ChunkProgress, ChunkTask, ClipFinished, ClipProgress, ClipResult, ClipStarted
        from vsrt_cli.io.outputs import remove_stale_partials
        from vsrt_cli.engine.pipeline import Notice

        ray = import_ray()
        cfg = self.config
        started_here = not ray.is_initialized()
        if started_here:
            try:
                self._start(ray)
            except BaseException:
                self._shutdown(ray)
                raise
        gpus = int(ray.cluster_resources().get("GPU", 0)) if cfg.gpus < 0 else cfg.gpus
        gpu = gpus > 0 and not cfg.fake_gpus
        per = {"num_gpus": 1, "num_cpus": 0} if gpus > 0 else {"num_cpus": 1}
        count = gpus if gpus > 0 else cfg.workers
        actor = ray.remote(max_restarts=0, **per)(_Worker)
        shared = ray.put(model.to("cpu"))

        def new_worker() -> Any:
            return actor.remote(shared, cfg.threads, "cuda" if gpu else "cpu", cfg.choice)

        def target(unit: Any) -> Any:  # the file the unit writes
            return unit.path if isinstance(unit, ChunkTask) else unit.output

        workers = [new_worker() for _ in range(max(1, min(count, len(units))))]
        events: queue.Queue = queue.Queue()
        todo: queue.Queue = queue.Queue()
        for number, unit in enumerate(units, 1):
            todo.put((number, unit))
        stop = threading.Event()

        def drive(w: int) -> None:
            while not stop.is_set():
                try:
                    number, unit = todo.get_nowait()
                except queue.Empty:
                    break
                chunk = isinstance(unit, ChunkTask)
                if not chunk:
                    events.put(ClipStarted(number, unit))
                begun = time.perf_counter()
                for attempt in range(1, ATTEMPTS + 1):
                    try:
                        for ref in workers[w].run.options(num_returns="streaming").remote(unit, template, record):
                            item = ray.get(ref)
                            if item[0] == "progress":
                                events.put(ChunkProgress(unit, item[1]) if chunk else ClipProgress(unit, item[1], item[2]))
                            elif item[0] == "notice":
                                events.put(Notice(item[1], note=item[2]))
                            else:
                                remove_stale_partials(target(unit))
                                events.put(item[1] if chunk else ClipFinished(item[1]))
                        break
                    except Exception as exc:  # the worker died (killed, out of memory): run it again
                        if stop.is_set():
                            return
                        ray.kill(workers[w], no_restart=True)
                        workers[w] = new_worker()  # a fresh process, the model loaded again
                        _remove_when_gone(target(unit))
                        if attempt == ATTEMPTS:
                            reason = f"the Ray worker failed {ATTEMPTS} times: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                            took = time.perf_counter() - begun
                            events.put(ChunkFinished(unit, reason, seconds=took) if chunk
                                       else ClipFinished(ClipResult(unit, "failed", reason, 0, took)))
                        else:
                            events.put(Notice(f"{unit.name}: the worker was lost; running it again (attempt {attempt + 1} of {ATTEMPTS})"))
            events.put(_DONE)

        threads = [threading.Thread(target=drive, args=(w,), daemon=True, name=f"vsrt-ray-{w}") for w in range(len(workers))]
        for t in threads:
            t.start()
        try:
            live = len(threads)
            while live:
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if event is _DONE:
                    live -= 1
                else:
                    yield event
        finally:
            stop.set()
            self._kill(ray, workers)
            for unit in units:  # what killed workers of this host left half-written
                _remove_when_gone(target(unit))
            if started_here:
                self._shutdown(ray)

    @staticmethod
    def _kill(ray: Any, workers: list) -> None:
        for w in workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:
                pass


def _remove_when_gone(output: Any, wait: float = 3.0) -> None:
    """Remove this host's partials of ``output`` whose process is gone, waiting a little for
    killed workers to die."""
    from vsrt_cli.io.outputs import host, remove_stale_partials

    deadline = time.monotonic() + wait
    prefix = f".{output.stem}.vsrt-partial-{host()}-"
    while True:
        remove_stale_partials(output)
        left = output.parent.is_dir() and any(p.name.startswith(prefix) or p.name.startswith(f".{output.name}.vsrt-partial-{host()}-")
                                               for p in output.parent.iterdir())
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.1)


FAKE_GPUS = "VSRT_RAY_FAKE_GPUS"  # tests: a local instance declares this many GPUs; the work runs on the CPU


def from_flags(*, workers: int, devices: str | None, address: str | None, device: str,
               choice: Any = None) -> tuple[RayConfig | None, str]:
    """The Ray setup ``--workers``/``--devices``/``--ray`` ask for (None: run here, one clip
    after another), and the device the driver builds the job on: with Ray, ``cpu`` (the driver
    runs no model and needs no GPU; each worker resolves ``choice``, a
    :class:`~vsrt_cli.jobs.build.DeviceChoice`, for its own card). Unreachable addresses are
    refused here, before the model loads."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if devices is None and address is None and workers == 1:
        return None, device
    import_ray()
    if address is not None:
        check_address(address)
    fake = int(os.environ.get(FAKE_GPUS, "0") or 0)
    cpus = os.cpu_count() or 1
    if devices is None:
        if device not in ("cpu", "auto") and address is None:
            raise ConfigError(f"--workers {workers} runs CPU workers; use --device cpu, or --devices for GPUs")
        return RayConfig(address=address, workers=workers, threads=max(1, cpus // workers), choice=choice), "cpu"
    if devices == "all":
        gpus = fake or (-1 if address is not None else _local_gpus())
    else:
        names = [d.strip() for d in devices.split(",") if d.strip()]
        bad = [d for d in names if not (d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()))]
        if bad or not names:
            raise ConfigError(f"--devices {devices}: give all, or a list such as cuda:0,cuda:1")
        if address is None and not fake:  # a local instance sees only these GPUs
            os.environ["CUDA_VISIBLE_DEVICES"] = visible_mask(devices, [int(d[5:] or 0) for d in names])
        gpus = len(names)
    if gpus == 0:
        raise ConfigError("--devices all: no CUDA GPU here; use --device cpu --workers N for CPU workers")
    return RayConfig(address=address, gpus=gpus, fake_gpus=bool(fake), choice=None if fake else choice), "cpu"


def visible_mask(flag: str, indices: list[int]) -> str:
    """``CUDA_VISIBLE_DEVICES`` showing only the cards ``indices`` as this process numbers them:
    through the mask already set (a scheduler's ``2,3``, or GPU UUIDs), never over it."""
    count = _local_gpus()
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = [e.strip() for e in mask.split(",")][:count] if mask is not None else [str(i) for i in range(count)]
    through = f" (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else ""
    past = [i for i in indices if i >= count]
    if past:
        have = f"cuda:0..cuda:{count - 1}" if count else "none"
        raise ConfigError(f"--devices {flag}: cuda:{past[0]} does not exist; this process sees {count} CUDA device(s){through}: {have}")
    if len(set(indices)) < len(indices):
        raise ConfigError(f"--devices {flag}: a device is named twice; name each GPU once")
    return ",".join(shown[i] for i in indices)


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()

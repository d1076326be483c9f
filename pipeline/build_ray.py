"""The Ray runner of the build: every shard of every recipe of a command as Ray tasks.

Ray is imported and started only here, and only when the build chose Ray (see
:func:`pipeline.build.choose_runner`).  One Ray session serves the whole command: every
recipe's shards are tasks (:func:`write_task`) that run in the worker processes Ray starts
with the session, so no process starts per recipe and each worker loads an aligner once
(an actor pool would start processes of its own).  Without
``RAY_ADDRESS`` a new local Ray instance is started (never a cluster this machine happens
to know about); with it, the job runs on that cluster with this project as its working
directory.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.shards import ShardSpec
from pipeline.stages import BuildOptions, SampleMaker, crash_part, write_shard

#: What the project ships to a cluster's workers leaves out data, runs and the venv.
_EXCLUDES = [".venv", "data", ".git", "outputs", "runs", "lightning_logs", "*.ckpt"]


class RayStartError(UserError, RuntimeError):
    """Ray could not be started or joined; the message says what to check."""


#: The SampleMakers of this worker process, by recipe options (see :func:`write_task`).
_MAKERS: dict[str, SampleMaker] = {}


def write_task(out_dir: str, options: str, spec: ShardSpec, digest: str) -> dict[str, Any]:
    """Ray task: write one shard, of any recipe, and return its part (see
    :func:`pipeline.stages.write_shard`).  ``spec`` travels as Ray ships any argument
    (pickled: 15 ms there and back for a shard of 256 records, where JSON took 40).

    Ray runs these tasks in the worker processes it started with the session and reuses
    them, so a process builds one :class:`~pipeline.stages.SampleMaker` per recipe on first
    use and keeps it (makers share their aligner: ``stages.shared_aligner``): each
    alignment model loads once per worker, and only when a record needs it.  A writer's
    exception comes back as the shard's crash part, so one bad shard never stops the job.
    """
    return _write(out_dir, options, spec, digest)


def _write(out_dir: str, options: str, spec: ShardSpec, digest: str) -> dict[str, Any]:
    """:func:`write_task`'s work, also done by the driver's writer thread."""
    try:
        if options not in _MAKERS:
            _MAKERS[options] = SampleMaker(BuildOptions(**json.loads(options)))
        return write_shard(spec, Path(out_dir), _MAKERS[options], digest)
    except Exception as err:  # noqa: BLE001 - reported per shard
        return crash_part(spec, digest, err)


def _use_cluster_token() -> None:
    """Send the cluster's auth token when one is at hand, as ``ray start`` itself does.

    Ray 2.60's ``ray start --head`` turns token authentication on whenever a token exists
    (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN_PATH`` or ``RAY_AUTH_TOKEN``), but a driver
    joining it with ``ray.init(address=...)`` sends no token unless ``RAY_AUTH_MODE=token``
    was set before Ray read its config, and fails with "Authentication token is missing".
    Ray's own helper for ``ray start`` switches this process to token mode when a token
    exists (a token sent to a cluster without authentication is ignored); an explicit
    ``RAY_AUTH_MODE`` is left alone.
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication: nothing to send
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


_STOPPING: list[threading.Thread] = []

#: Ray's setting for starting an idle worker process per CPU when the first driver
#: connects, ready for its tasks.  ``start_ray(prestart=False)`` turns it off for a local
#: instance of the build's own (see :data:`pipeline.build.RAY_PRESTART_ITEMS`); the
#: variable, when set, decides instead.
PRESTART_ENV = "RAY_prestart_worker_first_driver"


def start_ray(prestart: bool = True) -> bool:
    """Start (no ``RAY_ADDRESS``) or join (``RAY_ADDRESS``) Ray, once per process; return
    whether this call started it (a caller's own Ray session is left alone).  ``prestart``:
    whether a local instance starts a worker process per CPU ahead of the first task
    (:data:`PRESTART_ENV`)."""
    import ray

    wait_stopped()
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "log_to_driver": False}
    if address:  # ship this project's code to the cluster's workers
        root = Path(__file__).resolve().parents[1]
        kwargs["runtime_env"] = {"working_dir": str(root), "excludes": _EXCLUDES}
        _use_cluster_token()
    else:  # a new instance of our own: Ray's note that it turned token auth on is noise here
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
        if not prestart and PRESTART_ENV not in os.environ:  # (Ray reads the variable)
            kwargs["_system_config"] = {"prestart_worker_first_driver": False}
    try:
        # "local" when RAY_ADDRESS is unset: a new local instance, never whatever cluster
        # /tmp/ray/ray_current_cluster names (ray.init() would join it, and hang for
        # minutes when that file is left from a cluster that is gone)
        ray.init(address=address or "local", **kwargs)
    except ConnectionError as err:
        raise RayStartError(
            f"cannot join the Ray cluster at RAY_ADDRESS={address} ({err}). Check that "
            "`ray status --address ...` works from this machine; a cluster started with "
            "token authentication needs its token here (~/.ray/auth_token, "
            "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN). Unset RAY_ADDRESS to build on a "
            "local Ray instead.") from err
    return True


def stop_ray() -> None:
    """``ray.shutdown()``, with the autoscaler monitor of a local instance this process
    started killed first (joined to a cluster, the driver only disconnects).

    ``ray.shutdown`` stops Ray's processes one after the other, the GCS before the
    autoscaler monitor, whose SIGTERM handler then tries to report to the GCS that is gone
    and is killed only when the 1 s grace period runs out: 1.4 s of which 1.0 is that wait
    (2 cores).  A local instance has nothing for its monitor to scale, so it is killed
    first with Ray's own ``Node.kill_monitor`` (no handler runs, nothing is reported), and
    the rest stops in ~0.4 s.  ``Node`` is not public Ray API: where it is missing or
    fails (another Ray release), ``ray.shutdown`` stops everything as before.
    """
    import ray

    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    try:
        if node is not None and node.head:  # (a local instance: this process started it)
            node.kill_monitor(check_alive=False)
    except Exception:  # (only a slower stop: ray.shutdown stops it)
        logging.getLogger(__name__).debug("kill_monitor failed", exc_info=True)
    ray.shutdown()


def wait_stopped() -> None:
    """Wait until a Ray session this module stops in the background has stopped."""
    while _STOPPING:
        _STOPPING.pop().join()


#: Tasks a worker slot has queued behind its running one: the next shard starts the moment
#: one finishes, while the driver holds only a few tasks' arguments at a time.
QUEUED_PER_WORKER = 1


class _DriverWriter(threading.Thread):
    """Writes shards in the driver process of a local Ray instance, from the moment
    ``ray.init`` is called until the queue is empty.

    Starting Ray's processes takes 4-5 s on 2 cores, most of it spent by the driver
    waiting for them; this thread takes shards off the front of the queue meanwhile.  Once
    Ray is up it goes on as one more writer next to Ray's tasks, which take shards off the
    same queue: on a few cores that keeps every core busy to the end instead of leaving
    one idle while the last round of tasks runs (7 shards on 2 workers are 4 rounds).
    ``enough`` stops it after the shard it holds (the build stopped early).  A shard is
    the same bytes whichever process writes it (:func:`write_task`'s writer runs here as
    there).
    """

    def __init__(self, waiting: deque[tuple[int, ShardSpec, str]],
                 where: Sequence[tuple[str, str]]) -> None:
        super().__init__(name="shards-while-ray-starts", daemon=True)
        self.waiting, self.where = waiting, where
        self.finished: deque[tuple[int, dict[str, Any]]] = deque()
        self.enough = threading.Event()

    def run(self) -> None:
        while not self.enough.is_set():
            try:
                job, spec, digest = self.waiting.popleft()
            except IndexError:
                return
            out_dir, options = self.where[job]
            self.finished.append((job, _write(out_dir, options, spec, digest)))

    def results(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The ``(job, part)`` of the shards written so far, each once."""
        while self.finished:
            yield self.finished.popleft()


def run_ray(todo: Sequence[tuple[int, ShardSpec, str]], jobs: Sequence[tuple[Path, BuildOptions]],
            workers: int | None, prestart: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Write the ``(job, spec, digest)`` shards as Ray tasks, at most ``workers`` (default:
    the cluster's CPUs) at a time; yield ``(job, part)`` as shards finish.  ``jobs[job]`` is
    the output directory and options of a recipe.  ``prestart``: a local instance started
    here starts its worker processes while it starts, not with the first tasks (for builds
    that will keep them busy: :data:`pipeline.build.RAY_PRESTART_ITEMS`).

    Plain Ray tasks rather than a Ray Data job: a shard is one task with a few strings in
    and a small dict out, which is all Ray Data's ``map_batches`` did here, and Ray Data's
    own start (its import, its stats actor in one more worker process, its executor) cost
    2-4 s of every build on 2 cores.  When this call starts a local Ray instance, the
    driver writes shards while Ray's processes start and then alongside Ray's tasks
    (:class:`_DriverWriter`); on a cluster (``RAY_ADDRESS``) every shard is a task.  A
    worker process that dies (out of memory, a lost node) is retried by Ray; after the
    retries its shard is reported as a crash like any writer exception, and the other
    shards go on.
    """
    where = [(str(out.resolve()), json.dumps(opts.to_json(), sort_keys=True))
             for out, opts in jobs]
    waiting = deque(todo)
    driver = None
    if not os.environ.get("RAY_ADDRESS") and not _ray_running():
        driver = _DriverWriter(waiting, where)
        driver.start()
    try:
        started = start_ray(prestart=prestart)
    except BaseException:
        if driver is not None:  # its shard is finished, not left half-written
            driver.enough.set()
            driver.join()
        raise
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    slots = max(1, min(workers or cpus, len(todo)))
    task = ray.remote(num_cpus=1, max_retries=2)(write_task)
    running: dict[Any, tuple[int, ShardSpec, str]] = {}

    def submit(count: int) -> None:
        while waiting and count > 0:
            job, spec, digest = waiting.popleft()
            out_dir, options = where[job]
            ref = task.remote(out_dir, options, spec, digest)
            running[ref] = (job, spec, digest)
            count -= 1

    submit(slots * (1 + QUEUED_PER_WORKER))
    try:
        while running or driver is not None:
            if driver is not None:
                alive = driver.is_alive()
                yield from driver.results()
                if not alive:  # (its last shard was among the results just yielded)
                    driver = None
                elif not running:
                    driver.join(0.1)
                    continue
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1,
                                timeout=None if driver is None else 0.1)
            for ref in ready:
                job, spec, digest = running.pop(ref)
                submit(1)
                try:
                    part = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died, retries spent
                    part = crash_part(spec, digest, err)
                yield job, part
    finally:
        for ref in running:  # the build stopped early (an error, Ctrl-C): drop the rest
            ray.cancel(ref)
        if driver is not None:  # (the same: its shard in hand is finished, not left half)
            driver.enough.set()
            driver.join()
        if started:
            # stopping Ray's processes takes ~0.4 s (stop_ray): let it overlap the reports,
            # cards and indexes the build writes next (the build waits for it to return)
            stop = threading.Thread(target=stop_ray, name="ray-shutdown")
            stop.start()
            _STOPPING.append(stop)


def _ray_running() -> bool:
    """Whether this process already has a Ray session (without importing Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()

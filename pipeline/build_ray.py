"""The Ray runner of the build: every shard of every recipe of a command in one Ray Data job.

Ray is imported and started only here, and only when the build chose Ray (see
:func:`pipeline.build.choose_runner`).  One Ray session serves the whole command: all
recipes' shards go through one ``map_batches`` of tasks (:func:`write_batch`) that run in
Ray's worker processes, so no process starts per recipe and each worker loads an aligner
once (an actor pool would start processes of its own, for every ``map_batches``).  Without
``RAY_ADDRESS`` a new local Ray instance is started (never a cluster this machine happens
to know about); with it, the job runs on that cluster with this project as its working
directory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
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


#: The SampleMakers of this worker process, by recipe options (see :func:`write_batch`).
_MAKERS: dict[str, SampleMaker] = {}


def write_batch(batch: dict[str, Any]) -> dict[str, list[str]]:
    """Ray Data task: write the shards of ``batch`` (one row each), of any recipe.

    A row names its recipe's output folder and options.  Ray runs these tasks in its
    already started worker processes and reuses them, so a process builds one
    :class:`~pipeline.stages.SampleMaker` per recipe on first use and keeps it (makers share
    their aligner: ``stages.shared_aligner``): each alignment model loads once per worker,
    and only when a record needs it.  No actor processes are started for the job.
    """
    results = []
    for job, out_dir, options, spec_json, digest in zip(
            batch["job"], batch["out"], batch["options"], batch["spec"], batch["digest"],
            strict=True):
        spec = ShardSpec.from_json(json.loads(spec_json))
        try:
            if options not in _MAKERS:
                _MAKERS[options] = SampleMaker(BuildOptions(**json.loads(options)))
            part = write_shard(spec, Path(out_dir), _MAKERS[options], digest)
        except Exception as err:  # noqa: BLE001 - reported per shard
            part = crash_part(spec, digest, err)
        results.append(json.dumps({"job": int(job), "part": part}))
    return {"result": results}


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


def start_ray() -> bool:
    """Start (no ``RAY_ADDRESS``) or join (``RAY_ADDRESS``) Ray, once per process; return
    whether this call started it (a caller's own Ray session is left alone)."""
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


def wait_stopped() -> None:
    """Wait until a Ray session this module stops in the background has stopped."""
    while _STOPPING:
        _STOPPING.pop().join()


def run_ray(todo: Sequence[tuple[int, ShardSpec, str]], jobs: Sequence[tuple[Path, BuildOptions]],
            workers: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Write the ``(job, spec, digest)`` shards in one Ray Data job; yield ``(job, part)``
    as shards finish.  ``jobs[job]`` is the output directory and options of a recipe."""
    started = start_ray()
    import ray
    from ray.data import DataContext

    # our own bars show samples and hours; Ray Data's per-operator bars and INFO lines
    # would interleave with them
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n = max(1, min(workers or cpus, len(todo)))
    where = [(str(out.resolve()), json.dumps(opts.to_json(), sort_keys=True))
             for out, opts in jobs]
    ds = ray.data.from_items(
        [{"job": j, "out": where[j][0], "options": where[j][1],
          "spec": json.dumps(s.to_json()), "digest": d} for j, s, d in todo],
        override_num_blocks=len(todo),
    )
    out = ds.map_batches(write_batch, batch_size=1, num_cpus=1, concurrency=n,
                         batch_format="numpy")
    for row in out.iter_rows():
        got = json.loads(row["result"])
        yield got["job"], got["part"]
    if started:
        # stopping Ray's processes takes 1-2 s: let it overlap the reports, cards and
        # indexes the build writes next (the build waits for it before it returns)
        stop = threading.Thread(target=ray.shutdown, name="ray-shutdown")
        stop.start()
        _STOPPING.append(stop)

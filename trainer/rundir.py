"""One run directory for every rank and node of a run.

``hydra.run.dir`` is ``${paths.output_dir}/${task_name}/${run_stamp:<strftime format>}``
and ``paths.run_dir`` is ``${hydra:runtime.output_dir}`` (the lightning-hydra-template
convention), so overriding ``hydra.run.dir`` moves the config, checkpoints and metrics
together.  ``run_stamp`` gives every process of a run the same name, where Hydra's own
``${now:...}`` is read by each process at its own start:

* ``RUN_STAMP`` in the environment wins (set it in a launch script to name a run);
* under torchrun, rank 0's time is shared through the launcher's key-value store;
* under SLURM without torchrun (one task per GPU), ``slurm-<job id>``;
* else (one process, or Lightning's own launcher, which passes ``hydra.run.dir`` on to
  the processes it starts) the local time.

The stamp is kept in ``RUN_STAMP`` of the process, so it is computed once.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

STORE_KEY = "qwen_audio/run_stamp"


def _shared_by_torchrun(stamp: str) -> str:
    """Rank 0's ``stamp``, exchanged through torchrun's agent store (a TCPStore that
    every worker reaches at MASTER_ADDR:MASTER_PORT before the process group exists)."""
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
        timeout=timedelta(minutes=10),
    )
    key = f"{STORE_KEY}/{os.environ.get('TORCHELASTIC_RUN_ID', '')}"
    if int(os.environ.get("RANK", "0")) == 0:
        store.compare_set(key, "", stamp)  # a restarted rank 0 keeps the first stamp
    return store.get(key).decode()


def run_stamp(fmt: str = "%Y-%m-%d_%H-%M-%S") -> str:
    """The run's name, the same in every process of the run (see the module docstring)."""
    if os.environ.get("RUN_STAMP"):
        return os.environ["RUN_STAMP"]
    stamp = datetime.now().strftime(fmt)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        stamp = _shared_by_torchrun(stamp)
    elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        stamp = f"slurm-{os.environ['SLURM_JOB_ID']}"
    os.environ["RUN_STAMP"] = stamp
    return stamp


def rank_overrides(argv: list[str]) -> list[str]:
    """Hydra overrides for a process that is not global rank 0 of an externally launched
    run (torchrun, SLURM): it writes no second ``.hydra`` copy and logs to its own file."""
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    if rank == 0 or any(a.startswith("hydra.output_subdir=") for a in argv):
        return []
    return ["hydra.output_subdir=null", f"hydra.job.name=fit_rank{rank}"]

"""FSDP2 data parallelism over all processes (Lightning's ``ModelParallelStrategy``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import ModelParallelStrategy


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` with every process in one data-parallel (FSDP2) group.

    Lightning's ``"auto"`` sizes mean tensor parallelism inside a node; here the data
    parallel size is the world size (``num_nodes * devices``) and tensor parallel size 1,
    so ``fully_shard`` in ``configure_model`` shards over all ranks.  Works over NCCL on
    GPUs (single or multi-node, torchrun/SLURM) and over gloo on CPUs.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)

    def setup_environment(self) -> None:
        """Fix the mesh to (world size, 1) before Lightning builds it."""
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

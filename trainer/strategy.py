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

    ``hybrid_shard=True`` is HSDP: parameters are sharded within groups of ``shard_size``
    ranks (default: the processes of one node) and replicated across the groups, a 2-D
    mesh ``("replicate", "shard")`` (``fsdp_mesh``, read by ``QwenAudioModule``): the
    all-gathers stay inside a node, only the gradient all-reduce crosses nodes.
    """

    def __init__(
        self, hybrid_shard: bool = False, shard_size: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)
        self.hybrid_shard, self.shard_size = hybrid_shard, shard_size
        self.fsdp_mesh: Any = None

    def setup_environment(self) -> None:
        """Fix the mesh to (world size, 1) before Lightning builds it; add the HSDP mesh."""
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()
        if self.hybrid_shard:
            from torch.distributed.device_mesh import init_device_mesh

            shard = self.shard_size or self.num_processes
            if self.world_size % shard:
                raise ValueError(
                    f"shard_size {shard} does not divide the world size {self.world_size}"
                )
            self.fsdp_mesh = init_device_mesh(
                self.root_device.type, (self.world_size // shard, shard),
                mesh_dim_names=("replicate", "shard"),
            )

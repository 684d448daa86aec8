"""Several processes, one model: what rnnkit needs of torch.distributed.

``torchrun --nproc_per_node=N rnnkit train cfg.yaml`` starts N copies of the same command with
RANK, LOCAL_RANK and WORLD_SIZE set; each joins the process group (gloo on CPU, nccl on CUDA),
the model is wrapped in DistributedDataParallel, every rank reads its share of the batches, and
only rank 0 writes the run directory. A single process needs none of this: ``Distributed``
then says rank 0 of 1 and every collective is a no-op.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = Distributed()  # rank 0 of 1: the default where no process group is joined


def setup_distributed(device_kind: str) -> Distributed:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world_size)


def wrap_model(model: nn.Module, env: Distributed, device: torch.device) -> nn.Module:
    if not env.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def weights_digest(model: nn.Module) -> str:
    """A short SHA-256 of every parameter's bytes: equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()[:16]


def gather_digests(model: nn.Module, env: Distributed) -> list[str]:
    """Every rank's ``weights_digest``, in rank order (DDP keeps them equal; this proves it)."""
    mine = weights_digest(model)
    if not env.enabled:
        return [mine]
    digests: list[str] = [""] * env.world_size
    dist.all_gather_object(digests, mine)
    return digests


def barrier(env: Distributed) -> None:
    """Wait for every rank (a no-op for one process)."""
    if env.enabled:
        dist.barrier()


def teardown_distributed(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()

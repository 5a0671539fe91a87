"""Multi-process statistics of spinefm.train.ssl: two gloo ranks must agree with one process on the whole batch."""

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from spinefm import distributed as dist
from spinefm.train.ssl.losses import TeacherCentering


def _logits():
    return torch.randn(8, 5, generator=torch.Generator().manual_seed(0)) * 3


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        logits = _logits()
        shard = logits.chunk(world)[rank]
        centre = TeacherCentering(5, "centering", momentum=0.5)
        centre.update(shard)
        sk = TeacherCentering(5, "sinkhorn_knopp").probs(shard, 0.1)
        grad = torch.full((3,), float(rank + 1))
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = grad.clone()
        dist.all_reduce_grads([p])
        torch.save({"center": centre.center, "sk": sk, "grad": p.grad}, f"{out_dir}/{rank}.pt")
    finally:
        tdist.destroy_process_group()


@pytest.mark.slow  # spawns two interpreters that import torch: ~5-20 s on 2 shared cores
def test_two_ranks_match_one_process_on_the_full_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    logits = _logits()
    single = TeacherCentering(5, "centering", momentum=0.5)
    single.update(logits)
    assert torch.allclose(r0["center"], single.center, atol=1e-6) and torch.equal(r0["center"], r1["center"])
    sk = TeacherCentering(5, "sinkhorn_knopp").probs(logits, 0.1)
    assert torch.allclose(torch.cat([r0["sk"], r1["sk"]]), sk, atol=1e-5)
    assert torch.allclose(r0["grad"], torch.full((3,), 1.5)) and torch.equal(r0["grad"], r1["grad"])

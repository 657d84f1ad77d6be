"""The scheduled MESH and EPS jobs do their work only in the process that leads their duty."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from openspine.eps.jobs import DUTY as EPS_DUTY
from openspine.eps.jobs import eps_jobs
from openspine.mesh.jobs import DUTY as MESH_DUTY
from openspine.mesh.jobs import mesh_jobs
from openspine.platform.storage.ports import StoreUnavailable

pytestmark = pytest.mark.anyio


class _Jobs:
    """Both services' job entry points, counting the runs."""

    def __init__(self) -> None:
        self.runs = 0

    async def run_due(self, context: Any) -> tuple[int, int]:
        self.runs += 1
        return 0, 0

    async def expire_and_purge(self, context: Any) -> tuple[int, int]:
        self.runs += 1
        return 0, 0

    async def sweep_unreferenced_blobs(self) -> int:
        return 0


class _Leases:
    def __init__(self, leading: bool | None) -> None:
        self.leading = leading  # None: the store cannot say
        self.asked: list[str] = []

    async def lead(self, duty: str) -> bool:
        self.asked.append(duty)
        if self.leading is None:
            raise StoreUnavailable("store did not answer")
        return self.leading


async def _turns(loop: Any, jobs: _Jobs, leases: _Leases) -> None:
    task = asyncio.create_task(loop(jobs, 0, leases.lead))
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("loop", "duty"), [(eps_jobs, EPS_DUTY), (mesh_jobs, MESH_DUTY)])
@pytest.mark.parametrize("leading", [True, False, None], ids=["leader", "follower", "no-store"])
async def test_only_the_leader_runs_the_jobs_and_every_process_keeps_asking(
    loop: Any, duty: str, leading: bool | None
) -> None:
    jobs, leases = _Jobs(), _Leases(leading)
    await _turns(loop, jobs, leases)
    assert len(leases.asked) > 1  # asked at every turn: the lease can move
    assert set(leases.asked) == {duty}
    assert (jobs.runs > 0) is (leading is True)

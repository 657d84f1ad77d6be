"""The scheduled MESH work: expire undelivered messages (non-delivery reports), purge old ones,
and once a day sweep blob files that no message names.

Every process runs the loop, but only the one that leads the duty ``mesh-jobs`` does the work
(``Store.lead``: one process of all those sharing the store). The work is idempotent anyway and
each message changes by a conditional write: should two processes ever run it at once (a lease
that moved during a run), no message is reported or purged twice, and the sweep deletes only
files no record names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from openspine.mesh.service import MeshService
from openspine.platform.audit.events import AuditContext
from openspine.platform.storage.ports import StoreError

__all__ = ["DUTY", "mesh_jobs"]

log = logging.getLogger("openspine.mesh.jobs")


#: The lease whose holder runs these jobs.
DUTY: Final = "mesh-jobs"
#: How often the sweep of unreferenced blobs runs (the first time one interval after start).
SWEEP_EVERY_SECONDS: Final = 86_400


async def mesh_jobs(
    service: MeshService, interval_seconds: int, lead: Callable[[str], Awaitable[bool]]
) -> None:
    context = AuditContext(None, None)
    swept_at: float | None = None
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            if not await lead(DUTY):
                continue
            expired, purged = await service.expire_and_purge(context)
            if swept_at is None or time.monotonic() - swept_at >= SWEEP_EVERY_SECONDS:
                swept_at = time.monotonic()
                swept = await service.sweep_unreferenced_blobs()
                if swept:
                    log.info("mesh.jobs.swept blobs=%d", swept)
        except (StoreError, OSError) as exc:
            log.warning("mesh.jobs.failed error=%s", type(exc).__name__)
            continue
        if expired or purged:
            log.info("mesh.jobs.done expired=%d purged=%d", expired, purged)

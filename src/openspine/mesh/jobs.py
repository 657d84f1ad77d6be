"""The scheduled MESH work: expire undelivered messages (non-delivery reports), purge old ones,
and once a day sweep blob files that no message names.

Every process runs the loop; the work is idempotent and each message changes by a conditional
write, so two processes doing it at once cannot report or purge a message twice. The sweep only
deletes files no record names, so two processes sweeping at once cost time, not data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from openspine.mesh.service import MeshService
from openspine.platform.audit.events import AuditContext
from openspine.platform.storage.ports import StoreError

__all__ = ["mesh_jobs"]

log = logging.getLogger("openspine.mesh.jobs")


#: How often the sweep of unreferenced blobs runs (the first time one interval after start).
SWEEP_EVERY_SECONDS: Final = 86_400


async def mesh_jobs(service: MeshService, interval_seconds: int) -> None:
    context = AuditContext(None, None)
    swept_at: float | None = None
    while True:
        await asyncio.sleep(interval_seconds)
        try:
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

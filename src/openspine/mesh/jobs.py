"""The scheduled MESH work: expire undelivered messages (non-delivery reports) and purge old ones.

Every process runs the loop; the work is idempotent and each message changes by a conditional
write, so two processes doing it at once cannot report or purge a message twice.
"""

from __future__ import annotations

import asyncio
import logging

from openspine.mesh.service import MeshService
from openspine.platform.audit.events import AuditContext
from openspine.platform.storage.ports import StoreError

__all__ = ["mesh_jobs"]

log = logging.getLogger("openspine.mesh.jobs")


async def mesh_jobs(service: MeshService, interval_seconds: int) -> None:
    context = AuditContext(None, None)
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            expired, purged = await service.expire_and_purge(context)
        except StoreError:
            log.warning("mesh.jobs.store-unavailable")
            continue
        if expired or purged:
            log.info("mesh.jobs.done expired=%d purged=%d", expired, purged)

"""The scheduled EPS work: future-dated prescriptions become due; old ones expire.

Every process runs the loop; each change is a conditional write, so two processes cannot
expire or activate a prescription twice.
"""

from __future__ import annotations

import asyncio
import logging

from openspine.eps.service import EpsService
from openspine.platform.audit.events import AuditContext
from openspine.platform.storage.ports import StoreError

__all__ = ["eps_jobs"]

log = logging.getLogger("openspine.eps.jobs")


async def eps_jobs(service: EpsService, interval_seconds: int) -> None:
    context = AuditContext(None, None)
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            activated, expired = await service.run_due(context)
        except StoreError:
            log.warning("eps.jobs.store-unavailable")
            continue
        if activated or expired:
            log.info("eps.jobs.done activated=%d expired=%d", activated, expired)

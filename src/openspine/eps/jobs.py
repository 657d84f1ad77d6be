"""The scheduled EPS work: future-dated prescriptions become due; old ones expire.

Every process runs the loop, but only the one that leads the duty ``eps-jobs`` does the work
(``Store.lead``). Each change is a conditional write anyway, so two processes running it at once
(a lease that moved during a run) cannot expire or activate a prescription twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from openspine.eps.service import EpsService
from openspine.platform.audit.events import AuditContext
from openspine.platform.storage.ports import StoreError

__all__ = ["DUTY", "eps_jobs"]

log = logging.getLogger("openspine.eps.jobs")


#: The lease whose holder runs these jobs.
DUTY: Final = "eps-jobs"


async def eps_jobs(
    service: EpsService, interval_seconds: int, lead: Callable[[str], Awaitable[bool]]
) -> None:
    context = AuditContext(None, None)
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            if not await lead(DUTY):
                continue
            activated, expired = await service.run_due(context)
        except StoreError:
            log.warning("eps.jobs.store-unavailable")
            continue
        if activated or expired:
            log.info("eps.jobs.done activated=%d expired=%d", activated, expired)

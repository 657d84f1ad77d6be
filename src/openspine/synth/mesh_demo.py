"""The demo population's MESH mailboxes and workflows (one mailbox per organisation).

Mailbox ids follow the NHS pattern ``<ODS code>OT<nnn>``; passwords are random and kept, for the
demo only, in ``keys/mesh-passwords.json`` (mode 0600) so that ``demo-credentials.json`` can list
them. The directory holds them sealed, as it holds every mailbox's password.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openspine.directory.domain import MeshWorkflow, Organisation, OrganisationRole
from openspine.mesh.mailboxes import MailboxSpec, register
from openspine.mesh.passwords import PasswordSeal
from openspine.platform.storage.ports import Store

__all__ = ["PASSWORDS_FILE", "demo_mailboxes", "demo_workflows", "register_demo_mailboxes"]

PASSWORDS_FILE = "keys/mesh-passwords.json"


def mailbox_id(org: Organisation) -> str:
    return f"{org.ods_code}OT001"


def demo_mailboxes(orgs: Sequence[Organisation], passwords: dict[str, str]) -> list[MailboxSpec]:
    return [
        MailboxSpec(
            mailbox_id=mailbox_id(org),
            mailbox_name=f"{org.name} MESH"[:100],
            ods_code=org.ods_code,
            password=passwords[mailbox_id(org)],
            org_name=org.name,
        )
        for org in orgs
    ]


def demo_workflows(orgs: Sequence[Organisation]) -> list[MeshWorkflow]:
    """Discharge summaries and pathology from trusts to practices; referrals to pharmacies."""

    def having(role: OrganisationRole) -> tuple[str, ...]:
        return tuple(mailbox_id(o) for o in orgs if role in o.roles)

    trusts = having(OrganisationRole.NHS_TRUST)
    practices = having(OrganisationRole.GP_PRACTICE)
    pharmacies = having(OrganisationRole.PHARMACY)
    return [
        MeshWorkflow(workflow_id="TOC_FHIR_IP_DISCH", senders=trusts, receivers=practices),
        MeshWorkflow(workflow_id="PATH_MEDRPT_V3", senders=trusts, receivers=practices),
        MeshWorkflow(workflow_id="PHARM_REFERRAL", senders=practices, receivers=pharmacies),
    ]


def _passwords(data_dir: Path, ids: Sequence[str]) -> dict[str, str]:
    path = data_dir / PASSWORDS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for mailbox in ids:
        known.setdefault(mailbox, secrets.token_urlsafe(18))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(known, out, indent=2)
    return known


async def register_demo_mailboxes(
    data_dir: Path, store: Store, seal: PasswordSeal, orgs: Sequence[Organisation]
) -> None:
    passwords = _passwords(data_dir, [mailbox_id(o) for o in orgs])
    await register(
        store,
        seal,
        demo_mailboxes(orgs, passwords),
        demo_workflows(orgs),
        f"demo MESH mailboxes: {len(orgs)}",
    )


def credentials_section(data_dir: Path, base_url: str) -> dict[str, Any]:
    path = data_dir / PASSWORDS_FILE
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    return {
        "base_url": f"{base_url}/messageexchange",
        "shared_key_file": "keys/mesh-shared-key",
        "note": (
            "NHSMESH tokens use the shared key in shared_key_file; with --mesh-sandbox the server"
            " uses mesh-client's key 'TestKey' and adds ALICE, BOB and BARRY (password"
            " 'password')"
        ),
        "mailboxes": [{"mailbox_id": k, "password": v} for k, v in sorted(passwords.items())],
        "workflows": ["TOC_FHIR_IP_DISCH", "PATH_MEDRPT_V3", "PHARM_REFERRAL"],
    }

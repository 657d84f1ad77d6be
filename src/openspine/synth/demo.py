"""Creating a demo store in a data directory: keys, settings, directory, population, credentials.

Layout of DIR::

    openspine.json            settings of this store (read by `openspine serve/token/audit`)
    openspine.db              the SQLite store
    keys/token-signing.pem    the platform's access-token signing key
    keys/idp-signing.pem      the demo CIS2-style identity provider's key (signs ID tokens)
    keys/idp-jwks.json        its public key, trusted by the platform
    keys/apps/<client>.pem    each demo application's private key (public part in the directory)
    demo-credentials.json     how a client gets tokens (written at every start, with the URL)
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

from openspine.directory.domain import (
    Application,
    Organisation,
    OrganisationRole,
    RoleProfile,
    User,
)
from openspine.directory.storage import DirectoryRecords
from openspine.mesh.passwords import PasswordSeal, write_seal_key
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.security.keys import (
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_jwk,
)
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import ResourceState, Store, WriteSet
from openspine.settings import SETTINGS_FILE, Settings
from openspine.synth.directory_demo import demo_systems
from openspine.synth.loader import load_population, patient_put
from openspine.synth.mesh_demo import credentials_section, register_demo_mailboxes
from openspine.synth.people import DEMO_APPS, demo_users
from openspine.synth.population import Population, organisations
from openspine.synth.related import related_person_puts
from openspine.synth.sandbox import INVALIDATED, SANDBOX_ODS, SANDBOX_PATIENTS, SUPERSEDED
from openspine.synth.signing import certificate_file, key_file, with_signing_certificates

__all__ = [
    "CREDENTIALS_FILE",
    "create_demo_store",
    "create_keys_and_settings",
    "has_store",
    "refresh_credentials",
]

CREDENTIALS_FILE = "demo-credentials.json"
DEFAULT_SEED = 20261123


def has_store(data_dir: Path) -> bool:
    return (data_dir / SETTINGS_FILE).is_file()


def _write_key(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    path.write_bytes(private_key_pem(key))
    os.chmod(path, 0o600)
    return key


def create_keys_and_settings(data_dir: Path, store_url: str | None = None) -> Settings:
    """Keys and the settings file of a new store; the schema is migrated to head."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_key(data_dir / "keys" / "token-signing.pem")
    idp = _write_key(data_dir / "keys" / "idp-signing.pem")
    (data_dir / "keys" / "idp-jwks.json").write_text(json.dumps({"keys": [public_jwk(idp)]}))
    for app in DEMO_APPS:
        _write_key(data_dir / "keys" / "apps" / f"{app.client_id}.pem")
    raw = {
        "store_url": store_url or "sqlite:///{data_dir}/openspine.db",
        "token_signing_key_file": "keys/token-signing.pem",
        "idp_jwks_file": "keys/idp-jwks.json",
        "demo_mode": True,
    }
    (data_dir / SETTINGS_FILE).write_text(json.dumps(raw, indent=2))
    ensure_mesh_setup(data_dir)
    settings = Settings.for_data_dir(data_dir)
    upgrade(settings.store_url)
    return settings


def ensure_mesh_setup(data_dir: Path) -> None:
    """MESH's keys (shared key, password seal) and blob directory, added to a store lacking them."""
    path = data_dir / SETTINGS_FILE
    raw = json.loads(path.read_text())
    shared = data_dir / "keys" / "mesh-shared-key"
    if not shared.exists():
        shared.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(shared, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    write_seal_key(data_dir / "keys" / "mesh-seal.key")
    (data_dir / "blobs").mkdir(exist_ok=True)
    wanted = {
        "mesh_shared_key_file": "keys/mesh-shared-key",
        "mesh_seal_key_file": "keys/mesh-seal.key",
        "blob_dir": "blobs",
    }
    if any(raw.get(k) != v for k, v in wanted.items()):
        path.write_text(json.dumps({**raw, **wanted}, indent=2))


async def create_demo_store(
    data_dir: Path,
    settings: Settings,
    store: Store,
    *,
    size: int,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Load the directory and the population into a freshly migrated, started store."""
    population = Population(seed=seed, size=size)
    orgs = organisations(population)
    orgs.append(
        Organisation(
            ods_code=SANDBOX_ODS,
            name="NHS Sandbox GP Practice and Pharmacy",
            roles=(OrganisationRole.GP_PRACTICE, OrganisationRole.PHARMACY),
            postcode="LS1 6AE",
            address_line="1 Trevelyan Square",
            town="Leeds",
        )
    )
    users, profiles = demo_users(orgs)
    profiles = with_signing_certificates(data_dir, profiles)
    _write_credentials(data_dir, settings, users, profiles)
    apps = []
    for app in DEMO_APPS:
        key = load_private_key(data_dir / "keys" / "apps" / f"{app.client_id}.pem")
        apps.append(
            Application(
                client_id=app.client_id,
                name=app.name,
                ods_code=orgs[0].ods_code,
                jwks={"keys": [public_jwk(key)]},
                application_permissions=tuple(p.value for p in app.application_permissions),
                user_restricted=app.user_restricted,
                patient_access=app.patient_access,
            )
        )
    directory = DirectoryRecords.new_records(chain(orgs, users, profiles, apps, demo_systems(orgs)))
    await store.write(
        WriteSet(
            puts=[*directory, *related_person_puts()],
            audit=[
                audit_record(
                    action=AuditAction.PDS_POPULATION_LOAD,
                    outcome=AuditOutcome.SUCCESS,
                    principal=None,
                    context=AuditContext(None, None),
                    detail=f"directory loaded: {len(directory)} records",
                )
            ],
        )
    )
    if settings.mesh_seal_key_file is not None:
        seal = PasswordSeal.from_file(settings.mesh_seal_key_file)
        await register_demo_mailboxes(data_dir, store, seal, orgs)
    special = [
        *(patient_put(p) for p in SANDBOX_PATIENTS),
        *(patient_put(p, ResourceState.SUPERSEDED, survivor) for survivor, p in SUPERSEDED.items()),
        *(patient_put(p, ResourceState.INVALIDATED) for p in INVALIDATED),
    ]
    return await load_population(store, population, special, progress)


def _kid(path: Path) -> str:
    return str(public_jwk(load_private_key(path))["kid"])


def _write_credentials(
    data_dir: Path, settings: Settings, users: list[User], profiles: list[RoleProfile]
) -> None:
    by_id = {p.role_profile_id: p for p in profiles}
    document = {
        "token_url": settings.token_url,
        "base_url": settings.public_base_url,
        "apps": [
            {
                "client_id": app.client_id,
                "name": app.name,
                "kid": _kid(data_dir / "keys" / "apps" / f"{app.client_id}.pem"),
                "private_key_file": f"keys/apps/{app.client_id}.pem",
                "token_url": settings.token_url,
                "access_modes": [
                    "patient"
                    if app.patient_access
                    else "user-restricted"
                    if app.user_restricted
                    else "application-restricted"
                ],
                "application_permissions": [p.value for p in app.application_permissions],
            }
            for app in DEMO_APPS
        ],
        "identity_provider": {
            "issuer": settings.idp_issuer,
            "private_key_file": "keys/idp-signing.pem",
            "kid": _kid(data_dir / "keys" / "idp-signing.pem"),
            "note": "stands in for NHS CIS2: sign an ID token for a demo user, then exchange it",
        },
        "users": [
            {
                "user_id": user.user_id,
                "name": user.name,
                "role_profiles": [
                    {
                        "role_profile_id": rp.role_profile_id,
                        "ods_code": rp.ods_code,
                        "job_role_code": rp.job_role_code,
                        "job_role_name": rp.job_role_name,
                        "activities": list(rp.activities),
                        **(
                            {
                                "signing_key_file": key_file(rp.role_profile_id),
                                "certificate_file": certificate_file(rp.role_profile_id),
                            }
                            if rp.signing_certificate
                            else {}
                        ),
                    }
                    for rp in (by_id[i] for i in user.role_profile_ids)
                ],
            }
            for user in users
        ],
    }
    (data_dir / CREDENTIALS_FILE).write_text(json.dumps(document, indent=2))


def refresh_credentials(data_dir: Path, settings: Settings) -> dict[str, Any]:
    """Point DIR/demo-credentials.json at the URL this process serves on."""
    path = data_dir / CREDENTIALS_FILE
    document: dict[str, Any] = json.loads(path.read_text())
    document["token_url"] = settings.token_url
    document["base_url"] = settings.public_base_url
    for app in document["apps"]:
        app["token_url"] = settings.token_url
    document["mesh"] = credentials_section(data_dir, settings.public_base_url)
    path.write_text(json.dumps(document, indent=2))
    return document

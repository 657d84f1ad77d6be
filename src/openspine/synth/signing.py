"""Demo prescribers' signing keys and certificates (standing in for smartcards).

Each role profile that may authorise prescriptions (activity B0068) gets an RSA key and a
certificate issued by a demo CA; the directory holds the certificate on the role profile, and
``demo-credentials.json`` names both files so that a client can sign ``$prepare``'s digest.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from openspine.directory.domain import RoleProfile

__all__ = ["AUTHORISE_PRESCRIPTIONS", "certificate_file", "key_file", "with_signing_certificates"]

AUTHORISE_PRESCRIPTIONS = "B0068"


def key_file(role_profile_id: str) -> str:
    return f"keys/signing/{role_profile_id}.key.pem"


def certificate_file(role_profile_id: str) -> str:
    return f"keys/signing/{role_profile_id}.cert.pem"


def _issue(data_dir: Path, profile: RoleProfile) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenSpine demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{profile.user_id} {profile.role_profile_id}"),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenSpine Demo Smartcard CA")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3 * 365))
        .sign(key, hashes.SHA256())
    )
    key_path = data_dir / key_file(profile.role_profile_id)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    (data_dir / certificate_file(profile.role_profile_id)).write_text(pem)
    return pem


def with_signing_certificates(data_dir: Path, profiles: list[RoleProfile]) -> list[RoleProfile]:
    """Prescribing role profiles with a fresh key and certificate; the others unchanged."""
    return [
        msgspec.structs.replace(p, signing_certificate=_issue(data_dir, p))
        if AUTHORISE_PRESCRIPTIONS in p.activities
        else p
        for p in profiles
    ]

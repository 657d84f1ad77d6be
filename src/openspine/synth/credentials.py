"""What a client does to get a token: sign a client assertion (and, for a user, an ID token).

Used by the CLI, the tests and the benchmark exactly as an integrator would use their own keys.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from openspine.platform.security.tokens import ID_TOKEN_TYPE, JWT_BEARER, TOKEN_EXCHANGE

__all__ = ["app_token_form", "client_assertion", "id_token", "user_token_form"]


def client_assertion(
    key: rsa.RSAPrivateKey, kid: str, client_id: str, token_url: str, lifetime: int = 300
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="RS512", headers={"kid": kid})


def id_token(
    key: rsa.RSAPrivateKey,
    kid: str,
    *,
    issuer: str,
    client_id: str,
    user_id: str,
    role_profile_id: str,
    lifetime: int = 300,
) -> str:
    """An ID token as the CIS2-style identity provider issues it after a user logs in."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "sub": user_id,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "selected_roleid": role_profile_id,
        "authentication_assurance_level": "3",
    }
    return jwt.encode(claims, key, algorithm="RS512", headers={"kid": kid})


def patient_id_token(
    key: rsa.RSAPrivateKey,
    kid: str,
    *,
    issuer: str,
    client_id: str,
    nhs_number: str,
    proofing_level: str = "P9",
    lifetime: int = 300,
) -> str:
    """An ID token as an NHS login-style identity provider issues it to a proven patient."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nhs-login:{nhs_number}")),
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "nhs_number": nhs_number,
        "identity_proofing_level": proofing_level,
        "vot": "P9.Cp.Cd" if proofing_level == "P9" else "P5.Cp.Cd",
    }
    return jwt.encode(claims, key, algorithm="RS512", headers={"kid": kid})


def app_token_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }


def user_token_form(assertion: str, subject_token: str) -> dict[str, str]:
    return {
        "grant_type": TOKEN_EXCHANGE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        "subject_token_type": ID_TOKEN_TYPE,
        "subject_token": subject_token,
    }

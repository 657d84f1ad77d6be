"""RSA keys: generation, loading, JWK export with RFC 7638 thumbprint key ids."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = [
    "generate_private_key",
    "jwks_public_keys",
    "load_private_key",
    "private_key_pem",
    "public_jwk",
    "thumbprint",
]


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported")
    return key


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an RSA key, base64url without padding."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, *, alg: str = "RS512") -> dict[str, Any]:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update({"kid": thumbprint(jwk), "use": "sig", "alg": alg})
    return jwk


def jwks_public_keys(jwks: dict[str, Any]) -> dict[str, rsa.RSAPublicKey]:
    """Map kid → public key for every RSA signing key of a JWKS document."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") != "RSA" or "kid" not in jwk:
            continue
        key = RSAAlgorithm.from_jwk(jwk)
        if isinstance(key, rsa.RSAPublicKey):
            keys[str(jwk["kid"])] = key
    return keys

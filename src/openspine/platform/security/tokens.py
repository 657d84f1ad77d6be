"""OAuth2 token issuing and access-token verification, as the NHS API platform does them.

Issuing (``POST /oauth2/token``):

* ``grant_type=client_credentials`` with a signed JWT client assertion
  (``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``): RS512 only,
  ``kid`` naming a key registered for the application, ``iss`` = ``sub`` = client id, ``aud`` = the
  token URL, ``exp`` no more than 5 minutes ahead, ``jti`` single use → an application-restricted
  token.
* ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` with the same client assertion
  and a ``subject_token`` (an ID token from the CIS2-style identity provider, RS256/RS512, naming
  the user and the ``selected_roleid``) → a user-restricted token bound to that one role profile.

Access tokens are RS512 JWTs signed by the platform key; verification accepts nothing else (no
``none``, no HMAC, so no algorithm confusion) and caches verified tokens until they expire.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.errors import AccessDenied, InvalidRequest
from openspine.platform.security.keys import jwks_public_keys, public_jwk
from openspine.platform.security.ports import IdentityDirectory
from openspine.platform.security.principal import AccessMode, Principal
from openspine.platform.security.rbac import Permission, permissions_for_activities
from openspine.platform.storage.ports import ConsumeNonce, NonceReplayed, Store, WriteSet

__all__ = ["IssuedToken", "TokenIssuer", "TokenVerifier"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ASSERTION_MAX_LIFETIME = 300
CLOCK_SKEW = 10
ACCESS_ALG = "RS512"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_type: str = "Bearer"
    issued_token_type: str | None = None

    def as_response(self) -> dict[str, str]:
        body = {
            "access_token": self.access_token,
            "expires_in": str(self.expires_in),
            "token_type": self.token_type,
            "issued_at": str(int(time.time() * 1000)),
        }
        if self.issued_token_type:
            body["issued_token_type"] = self.issued_token_type
        return body


def _decode_failure(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "has expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "has the wrong audience"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"is missing the '{exc.claim}' claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "has an invalid signature"
    return "is invalid"


#: What a patient may do about their own record (the service checks it is their own).
PATIENT_PERMISSIONS = frozenset({Permission.PDS_PATIENT_READ, Permission.PDS_PATIENT_UPDATE})


class TokenIssuer:
    def __init__(
        self,
        *,
        token_url: str,
        audience: str,
        signing_key: rsa.RSAPrivateKey,
        idp_issuer: str,
        idp_jwks: Mapping[str, Any],
        directory: IdentityDirectory,
        store: Store,
        ttl_seconds: int,
    ) -> None:
        self._token_url = token_url
        self._audience = audience
        self._signing_key = signing_key
        self._kid = str(public_jwk(signing_key)["kid"])
        self._idp_issuer = idp_issuer
        self._idp_keys = jwks_public_keys(dict(idp_jwks))
        self._directory = directory
        self._store = store
        self._ttl = ttl_seconds

    async def issue(self, form: Mapping[str, str], context: AuditContext) -> IssuedToken:
        grant_type = form.get("grant_type")
        if grant_type not in ("client_credentials", TOKEN_EXCHANGE):
            raise InvalidRequest("grant_type is missing or not supported")
        if form.get("client_assertion_type") != JWT_BEARER:
            raise InvalidRequest(f"client_assertion_type must be {JWT_BEARER}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise InvalidRequest("client_assertion is missing")
        app, claims = await self._verify_client_assertion(assertion)
        now = int(time.time())
        token_claims: dict[str, Any] = {
            "iss": self._token_url,
            "aud": self._audience,
            "iat": now,
            "exp": now + self._ttl,
            "jti": str(uuid.uuid4()),
            "client_id": app.client_id,
        }
        issued_type = None
        if grant_type == TOKEN_EXCHANGE:
            if app.patient_access:
                token_claims.update(self._patient_claims(form, app.client_id))
            elif app.user_restricted:
                token_claims.update(await self._user_claims(form, app.client_id))
            else:
                raise AccessDenied("application is not configured for user-restricted access")
            issued_type = ACCESS_TOKEN_TYPE
        else:
            token_claims.update(
                {
                    "sub": app.client_id,
                    "mode": AccessMode.APPLICATION.value,
                    "ods": app.ods_code,
                    "perms": sorted(p.value for p in app.application_permissions),
                }
            )
        access_token = jwt.encode(
            token_claims, self._signing_key, algorithm=ACCESS_ALG, headers={"kid": self._kid}
        )
        principal = principal_from_claims(token_claims)
        writes = WriteSet(
            nonces=[ConsumeNonce(app.client_id, str(claims["jti"]), int(claims["exp"]))],
            audit=[
                audit_record(
                    action=AuditAction.SECURITY_TOKEN_ISSUE,
                    outcome=AuditOutcome.SUCCESS,
                    principal=principal,
                    context=context,
                )
            ],
        )
        try:
            await self._store.write(writes)
        except NonceReplayed:
            raise AccessDenied("client assertion jti has already been used") from None
        return IssuedToken(access_token, self._ttl, issued_token_type=issued_type)

    async def _verify_client_assertion(self, assertion: str) -> tuple[Any, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AccessDenied("client assertion is not a valid JWT") from None
        if header.get("alg") != "RS512":
            raise AccessDenied("client assertion must be signed with RS512")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AccessDenied("client assertion header is missing 'kid'")
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or not client_id:
            raise AccessDenied("client assertion is missing 'iss'")
        app = await self._directory.application(client_id)
        if app is None or not app.active:
            raise AccessDenied("unknown or inactive client")
        key = jwks_public_keys(app.jwks).get(kid)
        if key is None:
            raise AccessDenied("client assertion 'kid' is not registered for this client")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=["RS512"],
                audience=self._token_url,
                issuer=client_id,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise AccessDenied(f"client assertion {_decode_failure(exc)}") from None
        if claims["sub"] != client_id:
            raise AccessDenied("client assertion 'sub' must equal 'iss'")
        if int(claims["exp"]) > int(time.time()) + ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
            raise AccessDenied("client assertion 'exp' is more than 5 minutes in the future")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AccessDenied("client assertion 'jti' is invalid")
        return app, claims

    def _patient_claims(self, form: Mapping[str, str], client_id: str) -> dict[str, Any]:
        """NHS login style: an ID token naming the patient's NHS number, proofed to P9."""
        claims = self._id_token_claims(
            form, client_id, ["iss", "sub", "aud", "exp", "nhs_number", "identity_proofing_level"]
        )
        if claims["identity_proofing_level"] != "P9":
            raise AccessDenied("patient access needs identity proofing level P9")
        nhs_number = str(claims["nhs_number"])
        if not (len(nhs_number) == 10 and nhs_number.isascii() and nhs_number.isdigit()):
            raise AccessDenied("subject_token 'nhs_number' is not an NHS number")
        return {
            "sub": str(claims["sub"]),
            "mode": AccessMode.PATIENT.value,
            "nhs_number": nhs_number,
            "perms": sorted(p.value for p in PATIENT_PERMISSIONS),
        }

    def _id_token_claims(
        self, form: Mapping[str, str], client_id: str, required: list[str]
    ) -> dict[str, Any]:
        if form.get("subject_token_type") != ID_TOKEN_TYPE:
            raise InvalidRequest(f"subject_token_type must be {ID_TOKEN_TYPE}")
        id_token = form.get("subject_token")
        if not id_token:
            raise InvalidRequest("subject_token is missing")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise AccessDenied("subject_token is not a valid JWT") from None
        key = self._idp_keys.get(str(header.get("kid")))
        if key is None or header.get("alg") not in ("RS256", "RS512"):
            raise AccessDenied("subject_token is not signed by the identity provider")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=["RS256", "RS512"],
                audience=client_id,
                issuer=self._idp_issuer,
                leeway=CLOCK_SKEW,
                options={"require": required},
            )
        except jwt.PyJWTError as exc:
            raise AccessDenied(f"subject_token {_decode_failure(exc)}") from None
        return claims

    async def _user_claims(self, form: Mapping[str, str], client_id: str) -> dict[str, Any]:
        if form.get("subject_token_type") != ID_TOKEN_TYPE:
            raise InvalidRequest(f"subject_token_type must be {ID_TOKEN_TYPE}")
        id_token = form.get("subject_token")
        if not id_token:
            raise InvalidRequest("subject_token is missing")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise AccessDenied("subject_token is not a valid JWT") from None
        key = self._idp_keys.get(str(header.get("kid")))
        if key is None or header.get("alg") not in ("RS256", "RS512"):
            raise AccessDenied("subject_token is not signed by the identity provider")
        try:
            claims = jwt.decode(
                id_token,
                key,
                algorithms=["RS256", "RS512"],
                audience=client_id,
                issuer=self._idp_issuer,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "selected_roleid"]},
            )
        except jwt.PyJWTError as exc:
            raise AccessDenied(f"subject_token {_decode_failure(exc)}") from None
        profile = await self._directory.role_profile(
            str(claims["sub"]), str(claims["selected_roleid"])
        )
        if profile is None or not profile.active:
            raise AccessDenied("the selected role profile does not belong to this user")
        return {
            "sub": profile.user_id,
            "mode": AccessMode.HEALTHCARE_WORKER.value,
            "rp": profile.role_profile_id,
            "ods": profile.ods_code,
            "jrc": profile.job_role_code,
            "act": sorted(profile.activities),
        }


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    mode = AccessMode(claims["mode"])
    if mode is AccessMode.HEALTHCARE_WORKER:
        activities = frozenset(str(a) for a in claims.get("act", ()))
        permissions = permissions_for_activities(activities)
    else:
        activities = frozenset()
        known = {p.value for p in Permission}
        permissions = frozenset(Permission(p) for p in claims.get("perms", ()) if p in known)
    return Principal(
        mode=mode,
        client_id=str(claims["client_id"]),
        permissions=permissions,
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
        ods_code=claims.get("ods"),
        user_id=str(claims["sub"]) if mode is AccessMode.HEALTHCARE_WORKER else None,
        role_profile_id=claims.get("rp"),
        job_role_code=claims.get("jrc"),
        activities=activities,
        nhs_number=claims.get("nhs_number"),
    )


class TokenVerifier:
    """Bearer token → :class:`Principal`; verified tokens are cached until they expire."""

    _CACHE_LIMIT = 100_000

    def __init__(self, *, public_key: rsa.RSAPublicKey, issuer: str, audience: str) -> None:
        self._key = public_key
        self._issuer = issuer
        self._audience = audience
        self._cache: dict[str, Principal] = {}

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AccessDenied("Missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AccessDenied("Authorization header must be 'Bearer <token>'")
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
            raise AccessDenied("Access token has expired")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ACCESS_ALG],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["iss", "aud", "exp", "jti", "sub"]},
            )
            principal = principal_from_claims(claims)
        except jwt.ExpiredSignatureError:
            raise AccessDenied("Access token has expired") from None
        except (jwt.PyJWTError, KeyError, ValueError):
            raise AccessDenied("Invalid access token") from None
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = principal
        return principal

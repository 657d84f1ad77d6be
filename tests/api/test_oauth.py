"""POST /oauth2/token and bearer-token checks: every bad credential gets 401 ACCESS_DENIED."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from openspine.platform.security.keys import generate_private_key, load_private_key
from openspine.settings import Settings
from openspine.synth.credentials import app_token_form, user_token_form
from tests.api.helpers import BACKEND, CLINICAL, app_token, user_token
from tests.conftest import BASE_URL, PATIENT_BASE, Clients

pytestmark = pytest.mark.anyio
TOKEN_URL = f"{BASE_URL}/oauth2/token"


def signed(
    clients: Clients,
    claims: dict[str, object],
    *,
    alg: str = "RS512",
    kid: str | None = None,
    client_id: str = BACKEND,
) -> str:
    app = clients.app(client_id)
    key = load_private_key(clients.dir / app["private_key_file"])
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid or app["kid"]})


def claims(client_id: str = BACKEND, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "jti": str(uuid.uuid4()),
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def denied(http: httpx.AsyncClient, form: dict[str, str]) -> str:
    response = await http.post("/oauth2/token", data=form)
    assert response.status_code == 401, response.text
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "ACCESS_DENIED"
    return str(issue.get("diagnostics", ""))


async def test_client_credentials_token(client: httpx.AsyncClient, clients: Clients) -> None:
    response = await client.post("/oauth2/token", data=app_token_form(clients.assertion(BACKEND)))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert int(body["expires_in"]) > 0
    assert response.headers["cache-control"] == "no-store"


async def test_replayed_assertion_is_refused(client: httpx.AsyncClient, clients: Clients) -> None:
    assertion = clients.assertion(BACKEND)
    assert (await client.post("/oauth2/token", data=app_token_form(assertion))).status_code == 200
    assert "already been used" in await denied(client, app_token_form(assertion))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"exp": int(time.time()) + 900}, "5 minutes"),
        ({"aud": "https://elsewhere.example/oauth2/token"}, "audience"),
        ({"sub": "someone-else"}, "'sub'"),
        ({"jti": None}, "jti"),
    ],
)
async def test_bad_assertion_claims(
    client: httpx.AsyncClient, clients: Clients, overrides: dict[str, object], message: str
) -> None:
    assert message in await denied(
        client, app_token_form(signed(clients, claims(BACKEND, **overrides)))
    )


async def test_unknown_kid(client: httpx.AsyncClient, clients: Clients) -> None:
    form = app_token_form(signed(clients, claims(), kid="not-a-registered-kid"))
    assert "kid" in await denied(client, form)


async def test_key_of_another_client(client: httpx.AsyncClient, clients: Clients) -> None:
    other = clients.app(CLINICAL)
    key = load_private_key(clients.dir / other["private_key_file"])
    forged = jwt.encode(
        claims(), key, algorithm="RS512", headers={"kid": clients.app(BACKEND)["kid"]}
    )
    assert "signature" in await denied(client, app_token_form(forged))


async def test_rs256_is_refused(client: httpx.AsyncClient, clients: Clients) -> None:
    await denied(client, app_token_form(signed(clients, claims(), alg="RS256")))


async def test_alg_none_is_refused(client: httpx.AsyncClient, clients: Clients) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "none", "kid": clients.app(BACKEND)["kid"]}).encode())
    payload = b64(json.dumps(claims()).encode())
    await denied(client, app_token_form(f"{header}.{payload}."))


def forged_claims() -> dict[str, object]:
    """Claims an attacker would want in an access token: read any patient, as an app."""
    return {
        "iss": TOKEN_URL,
        "aud": BASE_URL,
        "sub": "x",
        "jti": "x",
        "exp": int(time.time()) + 60,
        "mode": "application-restricted",
        "client_id": BACKEND,
        "perms": ["pds:patient:read"],
    }


async def read_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(
        f"{PATIENT_BASE}/Patient/9000000009",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )


async def test_hmac_algorithm_confusion_is_refused(
    client: httpx.AsyncClient, demo_settings: Settings
) -> None:
    """An HS512 token keyed with the platform's *public* key must not pass as an access token."""
    public_pem = (
        load_private_key(demo_settings.token_signing_key_file)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    payload = b64(json.dumps(forged_claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha512).digest()
    response = await read_with(client, f"{header}.{payload}.{b64(mac)}")
    assert response.status_code == 401


async def test_access_token_signed_by_another_key(client: httpx.AsyncClient) -> None:
    forged = jwt.encode(forged_claims(), generate_private_key(), algorithm="RS512")
    response = await read_with(client, forged)
    assert response.status_code == 401


async def test_tampered_access_token(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await app_token(client, clients)
    head, payload, signature = token.split(".")
    response = await read_with(client, f"{head}.{payload[:-2]}AA.{signature}")
    assert response.status_code == 401


async def test_missing_token(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{PATIENT_BASE}/Patient/9000000009", headers={"X-Request-ID": str(uuid.uuid4())}
    )
    assert response.status_code == 401
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "ACCESS_DENIED"


async def test_user_token_bound_to_role_profile(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, "R8000")
    claims_ = jwt.decode(token, options={"verify_signature": False})
    user_id, rp_id = clients.user("R8000")
    assert (claims_["sub"], claims_["rp"]) == (user_id, rp_id)
    assert claims_["jrc"] == "S8000:G8000:R8000"
    assert "B0825" in claims_["act"]


async def test_role_profile_of_another_user_is_refused(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    user_id, _ = clients.user("R8000")
    _, other_rp = clients.user("R8003")
    form = user_token_form(
        clients.assertion(CLINICAL), clients.id_token(user_id, other_rp, CLINICAL)
    )
    assert "role profile" in await denied(client, form)


async def test_id_token_not_from_the_identity_provider(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    user_id, rp_id = clients.user("R8000")
    fake = jwt.encode(
        {
            "iss": clients.creds["identity_provider"]["issuer"],
            "aud": CLINICAL,
            "sub": user_id,
            "exp": int(time.time()) + 60,
            "selected_roleid": rp_id,
        },
        generate_private_key(),
        algorithm="RS512",
        headers={"kid": clients.creds["identity_provider"]["kid"]},
    )
    assert "signature" in await denied(client, user_token_form(clients.assertion(CLINICAL), fake))


async def test_backend_app_cannot_exchange_user_tokens(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    user_id, rp_id = clients.user("R8000")
    form = user_token_form(clients.assertion(BACKEND), clients.id_token(user_id, rp_id, BACKEND))
    assert "user-restricted" in await denied(client, form)


async def test_unsupported_grant_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/oauth2/token", data={"grant_type": "password"})
    assert response.status_code == 400

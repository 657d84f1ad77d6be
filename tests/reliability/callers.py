"""Tokens for a live server, fetched through its real token endpoint as a client would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from openspine.platform.security.keys import load_private_key
from openspine.synth.credentials import (
    app_token_form,
    client_assertion,
    id_token,
    patient_id_token,
    user_token_form,
)
from openspine.synth.demo import CREDENTIALS_FILE

CLINICAL = "openspine-demo-clinical"
BACKEND = "openspine-demo-backend"
PATIENT_APP = "openspine-demo-patient"
#: Tokens are reused for this long (they live 10 minutes).
REUSE_SECONDS = 240.0


class Callers:
    """Access tokens for the demo apps, users (by job role) and patients of one live server."""

    def __init__(self, base_url: str, data_dir: Path) -> None:
        self.base_url = base_url
        self.dir = data_dir
        self.creds: dict[str, Any] = json.loads((data_dir / CREDENTIALS_FILE).read_text())
        self._cache: dict[str, tuple[float, str]] = {}

    def _app(self, client_id: str) -> dict[str, Any]:
        return next(a for a in self.creds["apps"] if a["client_id"] == client_id)

    def _assertion(self, client_id: str) -> str:
        app = self._app(client_id)
        key = load_private_key(self.dir / app["private_key_file"])
        return client_assertion(key, app["kid"], client_id, self.creds["token_url"])

    def _idp_key(self) -> Any:
        return load_private_key(self.dir / self.creds["identity_provider"]["private_key_file"])

    def role_profiles(self) -> list[tuple[str, str, str]]:
        """(job role code, user id, role profile id) of every demo role profile."""
        return [
            (rp["job_role_code"], user["user_id"], rp["role_profile_id"])
            for user in self.creds["users"]
            for rp in user["role_profiles"]
        ]

    def _token(self, cache_key: str, form: Callable[[], dict[str, str]]) -> str:
        """A cached token, or a new one from the token endpoint (``form`` builds the request)."""
        cached = self._cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < REUSE_SECONDS:
            return cached[1]
        response = httpx.post(f"{self.base_url}/oauth2/token", data=form(), timeout=30)
        assert response.status_code == 200, response.text
        token = str(response.json()["access_token"])
        self._cache[cache_key] = (time.monotonic(), token)
        return token

    def user(self, job_role: str) -> str:
        """A user-restricted token for the first role profile whose job role ends so."""
        _, user_id, rp_id = next(r for r in self.role_profiles() if r[0].endswith(job_role))
        return self.role_profile(user_id, rp_id)

    def role_profile(self, user_id: str, rp_id: str) -> str:
        idp = self.creds["identity_provider"]

        def form() -> dict[str, str]:
            subject = id_token(
                self._idp_key(),
                idp["kid"],
                issuer=idp["issuer"],
                client_id=CLINICAL,
                user_id=user_id,
                role_profile_id=rp_id,
            )
            return user_token_form(self._assertion(CLINICAL), subject)

        return self._token(f"user:{user_id}:{rp_id}", form)

    def app(self) -> str:
        return self._token("app", lambda: app_token_form(self._assertion(BACKEND)))

    def patient(self, nhs_number: str) -> str:
        idp = self.creds["identity_provider"]

        def form() -> dict[str, str]:
            subject = patient_id_token(
                self._idp_key(),
                idp["kid"],
                issuer=idp["issuer"],
                client_id=PATIENT_APP,
                nhs_number=nhs_number,
                proofing_level="P9",
            )
            return user_token_form(self._assertion(PATIENT_APP), subject)

        return self._token(f"patient:{nhs_number}", form)

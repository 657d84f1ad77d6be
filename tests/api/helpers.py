"""Getting tokens through the real token endpoint, as a client would."""

from __future__ import annotations

import httpx

from openspine.synth.credentials import app_token_form, user_token_form
from tests.conftest import Clients

CLINICAL = "openspine-demo-clinical"
BACKEND = "openspine-demo-backend"
PATIENT_APP = "openspine-demo-patient"


async def user_token(http: httpx.AsyncClient, clients: Clients, job_role: str) -> str:
    user_id, rp_id = clients.user(job_role)
    form = user_token_form(clients.assertion(CLINICAL), clients.id_token(user_id, rp_id, CLINICAL))
    response = await http.post("/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def app_token(http: httpx.AsyncClient, clients: Clients) -> str:
    response = await http.post("/oauth2/token", data=app_token_form(clients.assertion(BACKEND)))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def patient_token(http: httpx.AsyncClient, clients: Clients, nhs_number: str) -> str:
    form = user_token_form(clients.assertion(PATIENT_APP), clients.patient_id_token(nhs_number))
    response = await http.post("/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])

"""`openspine demo` as a real server process, used over HTTP with the real OAuth2 flows."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from openspine.platform.security.keys import load_private_key
from openspine.synth.credentials import (
    app_token_form,
    client_assertion,
    id_token,
    user_token_form,
)

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "openspine.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy(stream: IO[str], path: Path) -> None:
    with path.open("a") as out:
        for line in stream:
            out.write(line)
            out.flush()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    data_dir = tmp_path_factory.mktemp("e2e")
    log = data_dir.parent / "server.log"
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CLI, "demo", "--data-dir", str(data_dir), "--port", str(port), "--patients", "300"],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            start_new_session=True,
        )
    assert proc.stdout is not None
    base_url = None
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"openspine demo exited early: {log.read_text()[-2000:]}")
            if line.startswith("http://"):
                base_url = line.strip()
                break
        assert base_url == f"http://127.0.0.1:{port}"
        stdout_log = data_dir.parent / "server.stdout.log"
        copier = threading.Thread(target=_copy, args=(proc.stdout, stdout_log), daemon=True)
        copier.start()
        yield base_url, data_dir, stdout_log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_real_token_flows_and_patient_read(server: tuple[str, Path, Path]) -> None:
    base_url, data_dir, _ = server
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    clinical = next(a for a in creds["apps"] if "user-restricted" in a["access_modes"])
    backend = next(a for a in creds["apps"] if "application-restricted" in a["access_modes"])
    gp = next(u for u in creds["users"] if u["role_profiles"][0]["job_role_code"].endswith("R8000"))
    idp = creds["identity_provider"]
    with httpx.Client(base_url=base_url, timeout=10) as http:
        key = load_private_key(data_dir / clinical["private_key_file"])
        subject = id_token(
            load_private_key(data_dir / idp["private_key_file"]),
            idp["kid"],
            issuer=idp["issuer"],
            client_id=clinical["client_id"],
            user_id=gp["user_id"],
            role_profile_id=gp["role_profiles"][0]["role_profile_id"],
        )
        form = user_token_form(
            client_assertion(key, clinical["kid"], clinical["client_id"], creds["token_url"]),
            subject,
        )
        user = http.post("/oauth2/token", data=form)
        assert user.status_code == 200, user.text
        response = http.get(
            "/personal-demographics/FHIR/R4/Patient/9000000009",
            headers={
                "Authorization": f"Bearer {user.json()['access_token']}",
                "X-Request-ID": str(uuid.uuid4()),
            },
        )
        assert response.status_code == 200
        assert response.headers["etag"] == 'W/"2"'
        assert response.json()["name"][0]["family"] == "Smith"

        key = load_private_key(data_dir / backend["private_key_file"])
        app = http.post(
            "/oauth2/token",
            data=app_token_form(
                client_assertion(key, backend["kid"], backend["client_id"], creds["token_url"])
            ),
        )
        assert app.status_code == 200
        restricted = http.get(
            "/personal-demographics/FHIR/R4/Patient/9000000025",
            headers={
                "Authorization": f"Bearer {app.json()['access_token']}",
                "X-Request-ID": str(uuid.uuid4()),
            },
        )
        assert restricted.status_code == 200
        assert "address" not in restricted.json()


def test_cli_token_and_audit_verify(server: tuple[str, Path, Path]) -> None:
    base_url, data_dir, _ = server
    token = subprocess.run(
        [*CLI, "token", "--data-dir", str(data_dir), "--app", "openspine-demo-backend"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    response = httpx.get(
        f"{base_url}/personal-demographics/FHIR/R4/Patient/9000000017",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )
    assert response.status_code == 200
    verified = subprocess.run(
        [*CLI, "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr
    assert re.search(r"\d+ events verified", verified.stdout)


def test_logs_hold_no_patient_data(server: tuple[str, Path, Path]) -> None:
    base_url, _, stdout_log = server
    httpx.get(
        f"{base_url}/personal-demographics/FHIR/R4/Patient/9000000009?family=Smith",
        headers={"X-Request-ID": str(uuid.uuid4())},
    )
    httpx.get(
        f"{base_url}/personal-demographics/FHIR/R4/Patient/9000000009",
        headers={"X-Request-ID": "not-a-uuid", "Authorization": "Bearer junk"},
    )
    time.sleep(0.5)
    text = stdout_log.read_text() + (stdout_log.parent / "server.log").read_text()
    assert "Demo credentials" in text
    assert not re.search(r"\b9\d{9}\b", text), "an NHS number reached the logs"
    assert "Smith" not in text
    assert "family=" not in text

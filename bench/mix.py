"""The Spine mix: what ``bench/spine_mix.lua`` sends, prepared before the clock starts.

About 55 % PDS reads, 15 % PDS searches, 5 % PDS updates, 15 % EPS steps (create, release,
dispense, claim of the same prescriptions, in that order), 5 % MESH (send, download,
acknowledge) and 5 % other reads (the directory, the EPS tracker, RelatedPerson), each with a
real token and a durable audit event. What a load generator cannot do on its own is made here:
EPS prescriptions are prepared by the server and signed with the demo prescriber's key
(``$prepare`` + RSA), NHSMESH tokens are single-use so a supply is minted, and each update
names a patient and the version it expects. Each file is one request body or value per line.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
from mesh_client import AuthTokenGenerator

from bench.eps import BASE, Flow, claim_body, dispense_body, order, release_body
from bench.run import token

#: Shares of each kind of request, in percent (the issue's Spine mix).
SHARES = {"read": 55, "search": 15, "update": 5, "eps": 15, "mesh": 5, "other": 5}


def patients_to_update(db: Path, count: int, exclude: set[str]) -> list[str]:
    """Living patients at version 1 that the read scenario does not use: each is updated once."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT id FROM resources WHERE resource_type = 'Patient' AND version = 1"
            " AND state = 'active' ORDER BY id DESC LIMIT ?",
            (count + len(exclude),),
        ).fetchall()
    chosen = [r[0] for r in rows if r[0] not in exclude][:count]
    if len(chosen) < count:
        raise SystemExit(f"the store has only {len(chosen)} patients to update; use more")
    return chosen


def _lines(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def prepare(
    base_url: str,
    data_dir: Path,
    out: Path,
    *,
    numbers: list[str],
    expected_rps: float,
    duration: int,
) -> dict[str, str]:
    """Write the mix's inputs under ``out``; return the environment ``spine_mix.lua`` reads."""
    out.mkdir(parents=True, exist_ok=True)
    creds: dict[str, Any] = json.loads((data_dir / "demo-credentials.json").read_text())
    flow = Flow(data_dir, base_url)
    gp_user, gp_profile = flow.gp[0], flow.gp[1]["role_profile_id"]
    pharmacist_user = next(
        u["user_id"] for u in creds["users"] if flow.pharmacist in u["role_profiles"]
    )
    gp_token = token(data_dir, gp_user, gp_profile)
    pharmacist_token = token(data_dir, pharmacist_user, flow.pharmacist["role_profile_id"])
    pharmacy = flow.pharmacist["ods_code"]
    practice = flow.gp[1]["ods_code"]

    budget = expected_rps * duration * 1.5  # room for a faster run than expected
    n_eps = max(50, int(budget * SHARES["eps"] / 100 / 4))
    n_updates = max(50, int(budget * SHARES["update"] / 100))
    n_mesh = max(50, int(budget * SHARES["mesh"] / 100))

    creates, releases, dispenses, claims, tracked = [], [], [], [], []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for _ in range(n_eps):
            bundle = order(gp_user, gp_profile, pharmacy)
            prepared = http.post(
                f"{BASE}/$prepare",
                json=bundle,
                headers={"Authorization": f"Bearer {gp_token}", "X-Request-ID": str(uuid.uuid4())},
            )
            prepared.raise_for_status()
            request = bundle["entry"][1]["resource"]
            pid = request["groupIdentifier"]["value"]
            item = request["identifier"][0]["value"]
            creates.append(json.dumps(flow.sign(bundle, prepared.json()), separators=(",", ":")))
            releases.append(json.dumps(release_body(pid, pharmacy), separators=(",", ":")))
            dispenses.append(json.dumps(dispense_body(pid, item, pharmacy), separators=(",", ":")))
            claims.append(json.dumps(claim_body(pid, pharmacy), separators=(",", ":")))
            tracked.append(pid)

    key = (data_dir / creds["mesh"]["shared_key_file"]).read_bytes().strip()
    passwords = {m["mailbox_id"]: m["password"] for m in creds["mesh"]["mailboxes"]}
    sender, recipient = f"{practice}OT001", f"{pharmacy}OT001"
    send_tokens = AuthTokenGenerator(key, sender, passwords[sender])
    receive_tokens = AuthTokenGenerator(key, recipient, passwords[recipient])
    updates = patients_to_update(data_dir / "openspine.db", n_updates, exclude=set(numbers))
    return {
        "BENCH_NUMBERS": _lines(out / "numbers.txt", numbers),
        "BENCH_TOKEN": _lines(out / "token.txt", [gp_token]),
        "BENCH_PHARMACIST_TOKEN": _lines(out / "pharmacist-token.txt", [pharmacist_token]),
        "BENCH_UPDATES": _lines(out / "updates.txt", updates),
        "BENCH_EPS_CREATE": _lines(out / "eps-create.jsonl", creates),
        "BENCH_EPS_RELEASE": _lines(out / "eps-release.jsonl", releases),
        "BENCH_EPS_DISPENSE": _lines(out / "eps-dispense.jsonl", dispenses),
        "BENCH_EPS_CLAIM": _lines(out / "eps-claim.jsonl", claims),
        "BENCH_EPS_TRACKED": _lines(out / "eps-tracked.txt", tracked),
        "BENCH_MESH_SEND_TOKENS": _lines(
            out / "mesh-send-tokens.txt", [send_tokens.generate_token() for _ in range(n_mesh)]
        ),
        "BENCH_MESH_RECEIVE_TOKENS": _lines(
            out / "mesh-receive-tokens.txt",
            [receive_tokens.generate_token() for _ in range(2 * n_mesh)],
        ),
        "BENCH_MESH_FROM": sender,
        "BENCH_MESH_TO": recipient,
        "BENCH_MESH_WORKFLOW": "PHARM_REFERRAL",
        "BENCH_ODS": _lines(out / "ods.txt", [practice, pharmacy]),
        "BENCH_SHARES": ",".join(str(SHARES[k]) for k in SHARES),
    }

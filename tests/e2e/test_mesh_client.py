"""The official NHS MESH client against a running OpenSpine: its own sandbox suite, and crashes."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from mesh_client import Endpoint, MeshClient

from tests.live_server import Server, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("mesh")
    with serving(data_dir / "store", data_dir / "server.log") as running:
        yield running


def client(server: Server, mailbox: str) -> MeshClient:
    endpoint = Endpoint(server.url, False, None, False, False)
    return MeshClient(endpoint, mailbox, "password", shared_key=b"TestKey", max_chunk_size=5)


def test_mesh_client_sandbox_suite_from_pypi(server: Server, tmp_path: Path) -> None:
    """mesh-client's own tests/mesh_sandbox_tests.py, unchanged but for its endpoint URL."""
    wanted = version("mesh-client")
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(tmp_path),
            f"mesh-client=={wanted}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if download.returncode != 0:
        pytest.skip(
            f"PyPI unreachable for the mesh-client {wanted} sdist: {download.stderr[-300:]}"
        )
    sdist = next(tmp_path.glob("mesh_client-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    root = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("mesh_client-"))
    helpers = root / "tests" / "helpers.py"
    text, count = re.subn(
        r"^SANDBOX_ENDPOINT = .*$",
        f'SANDBOX_ENDPOINT = Endpoint("{server.url}", False, None, False, False)',
        helpers.read_text(),
        flags=re.MULTILINE,
    )
    assert count == 1, "mesh-client's tests/helpers.py no longer defines SANDBOX_ENDPOINT"
    helpers.write_text(text)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "default",
            "tests/mesh_sandbox_tests.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", run.stdout)
    assert "failed" not in run.stdout


def test_accepted_messages_survive_sigkill(server: Server) -> None:
    alice, bob = client(server, "ALICE"), client(server, "BOB")
    whole = alice.send_message("BOB", b"durable hello", workflow_id="RESTRICTED_WORKFLOW")
    # A chunked message half-uploaded when the server dies can be finished afterwards.
    first = alice.send_chunk("BOB", b"part1", 1, 2, workflow_id="RESTRICTED_WORKFLOW")
    assert first.status_code == 202
    partial = first.json()["message_id"]
    alice.close()  # type: ignore[no-untyped-call]
    bob.close()  # type: ignore[no-untyped-call]
    server.kill()
    server.start(first=False)
    alice, bob = client(server, "ALICE"), client(server, "BOB")
    try:
        assert whole in bob.list_messages()
        assert bob.retrieve_message(whole).read() == b"durable hello"
        second = alice.send_chunk("BOB", b"part2", 2, 2, message_id=partial)
        assert second.status_code == 202
        assert bob.retrieve_message(partial).read() == b"part1part2"
    finally:
        alice.close()  # type: ignore[no-untyped-call]
        bob.close()  # type: ignore[no-untyped-call]
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "openspine.cli",
            "audit",
            "verify",
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr

"""MESH benchmark: OpenSpine against NHS's own mesh-sandbox, with the same client (mesh-client).

    python -m bench.mesh [--duration 10] [--processes 4] [--big-mib 1024] [--rounds 3]

For each server: 1 KiB messages sent per second, then received and acknowledged per second
(``--processes`` client processes, each on its own workflow id so that receivers never race),
then one ``--big-mib`` message sent in 100 MiB chunks and read back (time, and the server's peak
resident memory from /proc VmHWM); then, on a server started afresh, 1 KiB sends and
receive+ack with wrk (``--connections``), ``--rounds`` times, the two servers taking turns so
that both see the machine in the same state (its speed drifts by a quarter from minute to
minute); the ratio reported is the median of the rounds'. mesh-sandbox runs in its own virtualenv
(bench/results/mesh-sandbox-venv, created on first use from PyPI) with its file store and full
authentication, in one process (with more it loses track of messages; see ``serving``);
OpenSpine runs ``--workers`` web workers. Everything stays on loopback. Writes
bench/results/mesh.json and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import requests
from mesh_client import AuthTokenGenerator, Endpoint, MeshClient

from bench.run import HERE, RESULTS, children, free_port, start, stop, wait_ready

SANDBOX_VENV = RESULTS / "mesh-sandbox-venv"
KIB = b"x" * 1024
CHUNK = 100 * 1024 * 1024


def client(url: str, mailbox: str) -> MeshClient:
    return MeshClient(
        Endpoint(url, False, None, False, False),
        mailbox,
        "password",
        shared_key=b"TestKey",
        max_chunk_size=CHUNK,
        transparent_compress=False,
    )


def _send_worker(url: str, sender: str, recipient: str, worker: int, seconds: float) -> int:
    sent = 0
    deadline = time.monotonic() + seconds
    with client(url, sender) as mesh:
        while time.monotonic() < deadline:
            mesh.send_message(recipient, KIB, workflow_id=f"BENCH_{worker}")
            sent += 1
    return sent


def _receive_worker(url: str, recipient: str, worker: int, seconds: float) -> int:
    received = 0
    deadline = time.monotonic() + seconds
    with client(url, recipient) as mesh:
        while time.monotonic() < deadline:
            ids = mesh.list_messages(max_results=100, workflow_filter=f"BENCH_{worker}")
            if not ids:
                break
            for message_id in ids:
                message = mesh.retrieve_message(message_id)
                assert message.read() == KIB
                message.acknowledge()
                received += 1
                if time.monotonic() >= deadline:
                    break
    return received


def rate(fn: Any, args: list[tuple[Any, ...]], seconds: float) -> tuple[float, int]:
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(len(args)) as pool:
        counts = pool.starmap(fn, args)
    elapsed = max(time.monotonic() - started, seconds)
    return round(sum(counts) / elapsed, 1), sum(counts)


def peak_rss_mib(pid: int) -> float:
    peak = 0
    for proc in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except FileNotFoundError:
            continue
    return round(peak / 1024, 1)


class _Zeros(io.RawIOBase):
    """``size`` bytes produced as read, never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x00" * n
        self.left -= n
        return n


def big_transfer(
    url: str, sender: str, recipient: str, mib: int, server_pid: int
) -> dict[str, Any]:
    size = mib * 1024 * 1024
    started = time.monotonic()
    with client(url, sender) as mesh:
        stream = {"Body": io.BufferedReader(_Zeros(size), 1024 * 1024), "ContentLength": size}
        message_id = mesh.send_message(recipient, stream, workflow_id="BENCH_BIG")
    sent = time.monotonic()
    read = 0
    with client(url, recipient) as mesh:
        message = mesh.retrieve_message(message_id)
        while piece := message.read(1024 * 1024):
            read += len(piece)
        message.acknowledge()
    done = time.monotonic()
    assert read == size, (read, size)
    return {
        "mib": mib,
        "send_s": round(sent - started, 1),
        "receive_s": round(done - sent, 1),
        "server_peak_rss_mib": peak_rss_mib(server_pid),
    }


def sandbox_python() -> Path:
    python = SANDBOX_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SANDBOX_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "mesh-sandbox", "uvicorn"], check=True
        )
    return python


def write_tokens(path: Path, mailbox: str, count: int) -> None:
    generator = AuthTokenGenerator(b"TestKey", mailbox, "password")
    path.write_text("\n".join(generator.generate_token() for _ in range(count)) + "\n")


def run_wrk(url: str, script: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            f"-d{int(args.duration)}s",
            "--latency",
            "-s",
            str(HERE / script),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
        timeout=args.duration + 60,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("JSON"))
    result: dict[str, Any] = json.loads(line[4:])
    ok = result["requests"] - result["non2xx"]
    result["ok_per_s"] = round(ok / (result["duration_us"] / 1e6), 1)
    return result


def wrk_phases(
    url: str, sender: str, recipient: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """The server's own capacity, with wrk as the load generator (tokens made beforehand), on a
    server started afresh for these phases (see ``main``)."""
    tokens = work / "send-tokens.txt"
    send_env = {
        "BENCH_TOKENS": str(tokens),
        "BENCH_PATH": f"/messageexchange/{sender}/outbox",
        "BENCH_TO": recipient,
    }
    write_tokens(tokens, sender, 200_000)
    send = run_wrk(url, "mesh_send.lua", send_env, args)
    # Every message in the inbox: the 1 KiB messages just sent and those the mesh-client phase
    # left. None is an error: mesh-sandbox under two worker processes once listed none here,
    # and the receive phase downloaded nothing and counted its answers to a bad id (2026-11-24).
    with client(url, recipient) as mesh:
        ids = list(mesh.iterate_message_ids(batch_size=5000))
    if not ids:
        raise RuntimeError(f"{url}: the inbox of {recipient} lists no message to receive")
    (work / "ids.txt").write_text("\n".join(ids) + "\n")
    write_tokens(tokens, recipient, 200_000)
    # Receiving and acknowledging runs at about the rate of sending, so it gets half the time:
    # it must not run out of the messages the send phase left before its time is up.
    receive = run_wrk(
        url,
        "mesh_receive.lua",
        {
            "BENCH_TOKENS": str(tokens),
            "BENCH_IDS": str(work / "ids.txt"),
            "BENCH_PATH": f"/messageexchange/{recipient}",
        },
        argparse.Namespace(connections=args.connections, duration=max(1, int(args.duration) // 2)),
    )
    return {
        "send_per_s": send["ok_per_s"],
        "send_p99_ms": send["p99_ms"],
        "send_non2xx": send["non2xx"],
        "receive_ack_per_s": round(receive["ok_per_s"] / 2, 1),
        "receive_p99_ms": receive["p99_ms"],
        # A few downloads lose the race to their own acknowledgement, sent at the same moment
        # on another connection (410): those messages count half, so the rate errs low.
        "receive_non2xx": receive["non2xx"],
        # Every message downloaded and acknowledged before the time was up: the rest of the run
        # asked for messages that do not exist, so the rate is too low, not a measurement.
        "ran_out_of_messages": receive["requests"] > 2 * len(ids),
        "messages_available": len(ids),
    }


def measure(
    name: str, url: str, sender: str, recipient: str, pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    sends = [(url, sender, recipient, i, args.duration) for i in range(args.processes)]
    send_rate, sent = rate(_send_worker, sends, args.duration)
    receives = [(url, recipient, i, args.duration) for i in range(args.processes)]
    receive_rate, received = rate(_receive_worker, receives, args.duration)
    result = {
        "server": name,
        "send_per_s": send_rate,
        "sent": sent,
        "receive_ack_per_s": receive_rate,
        "received": received,
    }
    if args.big_mib:
        try:
            result["big"] = big_transfer(url, sender, recipient, args.big_mib, pid)
        except requests.HTTPError as exc:
            # mesh-sandbox with 2 workers once answered 404 to the download of the 1 GiB message
            # it had accepted (2026-11-24): record the failure in the results, keep the rates.
            result["big"] = {"error": str(exc)[:200]}
    return result


@contextmanager
def serving(
    name: str, data_dir: Path, args: argparse.Namespace
) -> Iterator[tuple[str, int, str, str]]:
    """A fresh server on an empty store: (its URL, its pid, sender and recipient mailboxes)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if name == "OpenSpine":
        server = start(
            [
                sys.executable,
                "-m",
                "openspine.cli",
                "demo",
                "--mesh-sandbox",
                "--patients",
                "0",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            {},
            data_dir.with_suffix(".log"),
        )
        mailboxes = ("ALICE", "BOB")
    else:
        server = start(
            [
                str(sandbox_python()),
                "-m",
                "uvicorn",
                "mesh_sandbox.api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                # One process: mesh-sandbox keeps its mailboxes' state in each process, so under
                # `--workers 2` a message sent through one worker was not listed or downloaded
                # through the other (2026-11-24: its inbox listed none of the messages wrk had
                # sent, and answered 404 to the download of the 1 GiB one).
                "--workers",
                "1",
            ],
            {
                "STORE_MODE": "file",
                "AUTH_MODE": "full",
                "SHARED_KEY": "TestKey",
                "FILE_STORE_DIR": str(data_dir),
            },
            data_dir.with_suffix(".log"),
        )
        mailboxes = ("X26ABC1", "X26ABC2")
    try:
        if name == "OpenSpine":
            wait_ready(f"{url}/_status", timeout=120)
        else:
            wait_ready(f"{url}/messageexchange/_ping", timeout=120)
            httpx.delete(f"{url}/admin/reset", timeout=30).raise_for_status()
        yield url, server.pid, *mailboxes
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--workers", type=int, default=1, help="web worker processes of OpenSpine (mesh-sandbox: 1)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="wrk rounds, each server afresh in each, in turns"
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="openspine-mesh-bench-"))
    names = ("OpenSpine", "mesh-sandbox")
    results = []
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        for name in names:
            os.sync()  # see below
            with serving(name, work / f"{name}-mesh-client", args) as (url, pid, sender, to):
                results.append(measure(name, url, sender, to, pid, args))
        # Each group of phases on a server started afresh on an empty store: mesh-sandbox
        # slows down as it holds more messages (three 8 s wrk send runs in a row, 2026-11-24:
        # 440, 330 and 245 sends/s; OpenSpine 1,808, 1,624 and 1,629), and its reset reloads
        # what its file store holds, so the wrk rates depended on how many messages the
        # mesh-client phases had left.
        # The stores stay until the end: deleting mesh-sandbox's thousands of message files
        # between rounds slowed its next round (368, 259 and 177 sends/s in three rounds,
        # 2026-11-24): ext4 allocates new inodes past recently freed ones (ADR 0021).
        # Each server starts with nothing of the last one's left to write back: OpenSpine's
        # commits sync the whole file system (ADR 0016), and its first round after
        # mesh-sandbox's 1 GiB transfer, which mesh-sandbox never syncs, paid for writing it
        # (send p99 297 and 388 ms in two runs, against 11-16 ms in the other rounds).
        for number in range(args.rounds if shutil.which("wrk") else 0):
            rounds.append({})
            for name in names:
                os.sync()
                with serving(name, work / f"{name}-wrk-{number}", args) as (url, _, sender, to):
                    rounds[-1][name] = wrk_phases(url, sender, to, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for result in results:
        if rounds:
            result["wrk"] = median_round([r[result["server"]] for r in rounds])
    report = {
        "duration_s": args.duration,
        "processes": args.processes,
        "workers": args.workers,
        "results": results,
        "wrk_rounds": rounds,
        "wrk_ratios": [round_ratios(r["OpenSpine"], r["mesh-sandbox"]) for r in rounds],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / "mesh.json").write_text(json.dumps(report, indent=2))
    print(
        "| server | mesh-client sends/s | mesh-client receive+ack/s | wrk sends/s (p99 ms) |"
        " wrk receive+ack/s (p99 ms) | 1 GiB send s | 1 GiB receive s | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        big = r.get("big", {})
        w = r.get("wrk", {})
        print(
            f"| {r['server']} | {r['send_per_s']:,.0f} | {r['receive_ack_per_s']:,.0f} | "
            f"{w.get('send_per_s', 0):,.0f} ({w.get('send_p99_ms', '-')}) | "
            f"{w.get('receive_ack_per_s', 0):,.0f} ({w.get('receive_p99_ms', '-')})"
            f"{' RAN OUT OF MESSAGES' if w.get('ran_out_of_messages') else ''} | "
            f"{big.get('send_s', '-')} | {big.get('receive_s', '-')} | "
            f"{big.get('server_peak_rss_mib', '-')} |"
        )
    if report["wrk_ratios"]:
        print(f"\nwrk rounds (OpenSpine / mesh-sandbox): {len(rounds)}")
        for number, ratio in enumerate(report["wrk_ratios"], 1):
            send, receive = _x(ratio["send"]), _x(ratio["receive_ack"])
            print(f"  round {number}: send {send}, receive+ack {receive}")
        sends = [r["send"] for r in report["wrk_ratios"]]
        receives = [r["receive_ack"] for r in report["wrk_ratios"] if r["receive_ack"] is not None]
        print(
            f"wrk ratio, median of the rounds: send {_x(statistics.median(sends))}"
            f" (lowest {_x(min(sends))}), receive+ack "
            + (
                f"{_x(statistics.median(receives))} (lowest {_x(min(receives))})"
                if receives
                else "not measured (a server ran out of messages)"
            )
        )


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's wrk figures over the rounds: the median of each rate and p99."""
    numbers = ("send_per_s", "send_p99_ms", "receive_ack_per_s", "receive_p99_ms")
    summary: dict[str, Any] = {key: statistics.median(r[key] for r in rounds) for key in numbers}
    summary["send_non2xx"] = sum(r["send_non2xx"] for r in rounds)
    summary["receive_non2xx"] = sum(r["receive_non2xx"] for r in rounds)
    summary["ran_out_of_messages"] = any(r["ran_out_of_messages"] for r in rounds)
    summary["rounds"] = len(rounds)
    return summary


def round_ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    """One round's ratios; receive+ack is None where either server ran out of messages."""
    out_of_messages = ours["ran_out_of_messages"] or theirs["ran_out_of_messages"]
    return {
        "send": round(ours["send_per_s"] / max(theirs["send_per_s"], 0.1), 2),
        "receive_ack": None
        if out_of_messages
        else round(ours["receive_ack_per_s"] / max(theirs["receive_ack_per_s"], 0.1), 2),
    }


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


if __name__ == "__main__":
    main()

"""PDS benchmarks: OpenSpine (auth + audit) against the raw ASGI ceiling, same server settings.

    python -m bench.run [--scenario read|search|mix|load] [--patients 10000] [--duration 10]
                        [--connections 32] [--workers 1] [--rounds 1] [--reuse-store]

Builds a fresh demo store, serves it with granian, loads it with wrk (Debian package) on
loopback, then serves the ceiling app and loads it the same way; ``--rounds`` times, OpenSpine
and the ceiling taking turns, keeping the round with the median ratio (the machine's speed
drifts by a quarter from minute to minute, and a round's two servers share its drift). Writes
bench/results/pds-<scenario>-….json and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
#: Where results, stores and inputs go (the CI smoke test points it at a temporary folder).
RESULTS = Path(os.environ.get("OPENSPINE_BENCH_RESULTS", HERE / "results"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (from /proc), in seconds."""
    total = 0.0
    for child in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        for child in map(int, text):
            found.extend([child, *children(child)])
    return found


def run_wrk(
    url: str,
    env: dict[str, str],
    duration: int,
    connections: int,
    server_pid: int,
    script: str = "pds_read.lua",
) -> dict[str, Any]:
    cpu_before = cpu_seconds(server_pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    wrk = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(HERE / script),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    stdout, stderr = wrk.communicate(timeout=duration + 60)
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {stderr[-500:]}")
    # The load generator's own CPU: the kernel's accounting of children reaped meanwhile,
    # and wrk is the only one.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    wall = time.monotonic() - started
    line = next(x for x in stdout.splitlines() if x.startswith("JSON"))
    result: dict[str, Any] = json.loads(line[4:])
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    # Scripts that report failures (spine_mix.lua) print the first few: status and body.
    result["failures"] = [x[5:] for x in stdout.splitlines() if x.startswith("FAIL ")]
    result["server_cpu_percent"] = round(100 * (cpu_seconds(server_pid) - cpu_before) / wall, 1)
    result["load_generator_cpu_percent"] = round(100 * wrk_cpu / wall, 1)
    return result


def start(cmd: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """A server in its own session (stopped with its children by ``stop``); output to ``log``."""
    if log is None:
        return subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=out, stderr=out, start_new_session=True
        )


def token(data_dir: Path, user: str, role_profile: str) -> str:
    """A user-restricted access token from the platform's own token issuing (the CLI)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openspine.cli",
            "token",
            "--data-dir",
            str(data_dir),
            "--user",
            user,
            "--role-profile",
            role_profile,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def build_store(data_dir: Path, patients: int) -> None:
    """The bulk load itself: a fresh demo store of ``patients`` (what the load scenario times)."""
    from openspine.app import build_platform
    from openspine.synth.demo import create_demo_store, create_keys_and_settings

    settings = create_keys_and_settings(data_dir)
    platform = build_platform(settings)
    await platform.store.start()
    try:
        await create_demo_store(data_dir, settings, platform.store, size=patients, seed=1)
    finally:
        await platform.store.close()


def sample_people(patients: int, count: int = 5000) -> list[tuple[str, str, str, str]]:
    """Up to ``count`` patients of the store, spread over it: the same share of each of up to
    50 evenly spaced blocks of the generator, so reads and searches touch the whole store (the
    first 5,000 alone were written together and sit together on disk). A short last block
    gives fewer (3,500 of a 6,000-patient store)."""
    from openspine.synth.population import PatientMaker, Population

    maker = PatientMaker(Population(seed=1, size=patients))
    if maker.blocks == 0:
        return []
    spread = min(50, maker.blocks)
    chosen = [maker.block(i * maker.blocks // spread) for i in range(spread)]
    share = -(-count // spread)
    return [
        (p.nhs_number, p.family or "", p.given[0] if p.given else "", p.birth_date or "")
        for block in chosen
        for p in block[:share]
    ][:count]


def report_load(patients: int, seconds: float) -> None:
    """The bulk-load scenario: a fresh store of ``patients`` built by the demo generator."""
    report = {
        "scenario": "load",
        "patients": patients,
        "seconds": round(seconds, 1),
        "patients_per_s": round(patients / seconds, 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / f"load-{patients}.json").write_text(json.dumps(report, indent=2))
    print(
        f"| bulk load | {patients:,} patients | {seconds:,.1f} s | "
        f"{patients / seconds:,.0f} patients/s |"
    )


def measure_openspine(
    args: argparse.Namespace,
    data_dir: Path,
    people: list[tuple[str, str, str, str]],
    script: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """One run of the scenario against OpenSpine, started afresh on ``data_dir``: its result,
    and the environment its wrk script read (the ceiling's run reads the same)."""
    numbers = [p[0] for p in people]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli = [sys.executable, "-m", "openspine.cli"]
    server = start(
        [
            *cli,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        {},
        log=RESULTS / "server.log",
    )
    try:
        wait_ready(f"{base}/_ping")
        gp_token = token(data_dir, "555000000001", "555000000101")
        (RESULTS / "token.txt").write_text(gp_token + "\n")
        env = {
            "BENCH_NUMBERS": str(RESULTS / "numbers.txt"),
            "BENCH_TOKEN": str(RESULTS / "token.txt"),
            "BENCH_QUERIES": str(RESULTS / "queries.txt"),
        }
        family, given, born = people[0][1:]
        path = (
            f"Patient?family={family}&given={given}&birthdate=eq{born}"
            if args.scenario == "search"
            else f"Patient/{numbers[0]}"
        )
        sample = httpx.get(
            f"{base}/personal-demographics/FHIR/R4/{path}",
            headers={
                "Authorization": f"Bearer {gp_token}",
                "X-Request-ID": "60e0b220-8136-4ca5-ae46-1d97ef59d068",
            },
        )
        sample.raise_for_status()
        (RESULTS / "body.json").write_bytes(sample.content)
        if args.scenario == "mix":
            from bench.mix import prepare

            env.update(
                prepare(
                    base,
                    data_dir,
                    RESULTS / "mix",
                    numbers=numbers,
                    expected_rps=args.expected_rps,
                    duration=args.duration,
                )
            )
        openspine = run_wrk(base, env, args.duration, args.connections, server.pid, script)
    finally:
        stop(server)
    return openspine, env


def measure_ceiling(args: argparse.Namespace, env: dict[str, str], script: str) -> dict[str, Any]:
    """One run of the scenario's wrk script against the raw ASGI ceiling, the same settings."""
    port = free_port()
    ceiling_proc = start(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "bench.ceiling:app",
        ],
        {"OPENSPINE_BENCH_BODY": str(RESULTS / "body.json"), "PYTHONPATH": str(HERE.parent)},
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/")
        ceiling = run_wrk(
            f"http://127.0.0.1:{port}",
            env,
            args.duration,
            args.connections,
            ceiling_proc.pid,
            script,
        )
    finally:
        stop(ceiling_proc)
    return ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=["read", "search", "mix", "load"], default="read")
    parser.add_argument(
        "--expected-rps",
        type=float,
        default=4000,
        help="mix: the rate to prepare signed prescriptions and MESH tokens for",
    )
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="OpenSpine then the ceiling, this many times; the round with the median ratio is kept",
    )
    parser.add_argument(
        "--reuse-store",
        action="store_true",
        help="serve the store of the last run if it has the same size (no rebuild)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    RESULTS.mkdir(exist_ok=True)
    data_dir = RESULTS / "store"
    marker = data_dir / "bench-size.txt"
    if args.scenario == "load":
        shutil.rmtree(data_dir, ignore_errors=True)  # the last run's store: not part of a load
        started = time.monotonic()
        asyncio.run(build_store(data_dir, args.patients))
        seconds = time.monotonic() - started
        marker.write_text(str(args.patients))
        report_load(args.patients, seconds)
        return
    if args.reuse_store and marker.is_file() and marker.read_text() == str(args.patients):
        people = sample_people(args.patients)
        load_seconds = None
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        started = time.monotonic()
        asyncio.run(build_store(data_dir, args.patients))
        load_seconds = round(time.monotonic() - started, 1)
        marker.write_text(str(args.patients))
        people = sample_people(args.patients)
    numbers = [p[0] for p in people]
    (RESULTS / "numbers.txt").write_text("\n".join(numbers) + "\n")
    (RESULTS / "queries.txt").write_text("\n".join("|".join(p[1:]) for p in people) + "\n")
    script = {"read": "pds_read.lua", "search": "pds_search.lua", "mix": "spine_mix.lua"}[
        args.scenario
    ]
    rounds = []
    for _ in range(args.rounds):
        openspine, env = measure_openspine(args, data_dir, people, script)
        ceiling = measure_ceiling(args, env, script)
        rounds.append(
            {
                "openspine": openspine,
                "ceiling": ceiling,
                "ratio": round(openspine["rps"] / ceiling["rps"], 3),
            }
        )
    # The round whose ratio is the median (the lower middle one of an even count): its figures
    # belong together, and the machine's drift between rounds is shared by both servers.
    chosen = sorted(rounds, key=lambda r: r["ratio"])[(len(rounds) - 1) // 2]
    openspine, ceiling = chosen["openspine"], chosen["ceiling"]
    report = {
        "scenario": f"pds-{args.scenario}",
        "patients": args.patients,
        "load_seconds": load_seconds,
        "duration_s": args.duration,
        "connections": args.connections,
        "workers": args.workers,
        "openspine": openspine,
        "ceiling": ceiling,
        "ratio": chosen["ratio"],
        "rounds": [
            {
                "openspine_rps": r["openspine"]["rps"],
                "ceiling_rps": r["ceiling"]["rps"],
                "ratio": r["ratio"],
                "openspine_p99_ms": r["openspine"]["p99_ms"],
                "openspine_errors": r["openspine"]["errors"] + r["openspine"]["non2xx"],
            }
            for r in rounds
        ],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    name = f"pds-{args.scenario}-{args.patients}-w{args.workers}-c{args.connections}"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    print("| stack | req/s | p50 ms | p95 ms | p99 ms | errors | non-2xx | server CPU % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (
        (f"OpenSpine PDS {args.scenario} (auth + audit)", openspine),
        ("raw ASGI ceiling", ceiling),
    ):
        print(
            f"| {name} | {r['rps']:,.0f} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['errors']} | {r['non2xx']} | {r['server_cpu_percent']} |"
        )
    if len(rounds) > 1:
        for number, r in enumerate(report["rounds"], 1):
            print(
                f"round {number}: {r['openspine_rps']:,.0f} against {r['ceiling_rps']:,.0f}/s, "
                f"{r['ratio']:.1%}, {r['openspine_errors']} errors + non-2xx"
            )
        print("(the table: the round with the median ratio)")
    print(f"\nratio to ceiling: {report['ratio']:.1%}")


if __name__ == "__main__":
    main()

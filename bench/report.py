"""Tables and a plot of the latest harness results (bench/results/*.json and scale/*.json).

    python -m bench.report [--plot docs/benchmarks.png]

Prints a Markdown table (scenario, OpenSpine req/s and latency, the ceiling's req/s in the same
run, the ratio, and both processes' CPU) for docs/benchmarks.md, and draws the same figures as a
PNG: throughput against the ceiling, and p99 latency against the 100 ms target.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.run import RESULTS

#: Scenario files in the order they are shown.
ORDER = ("pds-read", "pds-search", "pds-mix")


def _runs() -> list[dict[str, Any]]:
    runs = []
    for path in sorted([*RESULTS.glob("pds-*.json"), *(RESULTS / "scale").glob("pds-*.json")]):
        data = json.loads(path.read_text())
        if "openspine" in data and "ceiling" in data:
            runs.append(data)
    return sorted(
        runs, key=lambda r: (ORDER.index(r["scenario"]), r["patients"], r.get("workers", 1))
    )


def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | patients | workers | conns | req/s | p50 ms | p95 ms | p99 ms"
        " | errors + non-2xx | server CPU % | wrk CPU % | ceiling req/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        o, c = r["openspine"], r["ceiling"]
        rows.append(
            f"| {r['scenario'].removeprefix('pds-')} | {r['patients']:,} | {r.get('workers', 1)}"
            f" | {r['connections']}"
            f" | {o['rps']:,.0f} | {o['p50_ms']:.1f} | {o['p95_ms']:.1f} | {o['p99_ms']:.1f}"
            f" | {o['errors'] + o['non2xx']} | {o['server_cpu_percent']:.0f}"
            f" | {o.get('load_generator_cpu_percent', float('nan')):.0f}"
            f" | {c['rps']:,.0f} | {r['ratio']:.1%} |"
        )
    for path in sorted([*RESULTS.glob("load-*.json"), *(RESULTS / "scale").glob("load-*.json")]):
        load = json.loads(path.read_text())
        rows.append(
            f"| bulk load | {load['patients']:,} | - | - | {load['patients_per_s']:,.0f} patients/s"
            " | - | - | - | - | - | - | - | - |"
        )
    return "\n".join(rows)


def plot(runs: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r['scenario'].removeprefix('pds-')}\n{r['patients']:,}\n{r.get('workers', 1)}w"
        for r in runs
    ]
    x = range(len(runs))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.bar([i - 0.2 for i in x], [r["openspine"]["rps"] for r in runs], 0.4, label="OpenSpine")
    left.bar([i + 0.2 for i in x], [r["ceiling"]["rps"] for r in runs], 0.4, label="raw ASGI")
    left.axhline(3500, color="red", linestyle="--", linewidth=1, label="Spine peak 3,500/s")
    left.set_xticks(list(x), labels, fontsize=8)
    left.set_ylabel("requests per second")
    left.set_title("Throughput (w: granian workers), wrk on the same 2 cores")
    left.legend(fontsize=8)
    right.bar(list(x), [r["openspine"]["p99_ms"] for r in runs], 0.5, color="tab:orange")
    right.axhline(100, color="red", linestyle="--", linewidth=1, label="p99 target 100 ms")
    right.set_xticks(list(x), labels, fontsize=8)
    right.set_ylabel("p99 latency, ms")
    right.set_title("OpenSpine p99 latency")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plot", type=Path, default=Path("docs/benchmarks.png"))
    args = parser.parse_args()
    runs = _runs()
    print(table(runs))
    if runs:
        plot(runs, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()

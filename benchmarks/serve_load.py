"""`scenes serve` under load on loopback, beside the floor of a local `predict_many` loop.

    python benchmarks/serve_load.py --run RUN [--levels 1,8,32,64] [--requests 256]
        [--rounds 5] [--configs no-batching,batching,2-workers,1-thread,
                          2-workers-batching,openvino-int8,local]
        [--out DIR]
    python benchmarks/serve_load.py --run RUN --soak 600 [--soak-level 8]
        [--soak-config 2-workers-batching] [--out DIR]

Each round, in an order rotated round by round, every server configuration is started
(`scenes serve` in a subprocess, waited for until /health says ok), driven at each concurrency
level by a bounded asynchronous client (httpx: exactly --requests requests per level, at most
LEVEL in flight, never an open loop), its resident memory read (the server and its worker
processes), and stopped with SIGTERM; "local" is `Predictor.predict_many` on the same photos
in this process (no HTTP), the floor a server is measured against. The photos are real: the
run's validation split (its split.csv), else ../shared/data/intel/train, read into memory once.

Writes OUT/serve_load.md (median and range over rounds of requests/s, images/s, p50, p95, p99,
errors, RSS, and images/s as a ratio to the same round's local loop), OUT/serve_load.json (every
round) and OUT/serve_load.png (p99 latency against throughput, one line per configuration, a
point per level).

--soak SECONDS instead keeps one server busy at one concurrency for that long, in windows of
--requests requests, and writes OUT/serve_soak.md (images/s, p99 and resident memory in the
first and the last minute, errors over the whole soak), .json (every window) and .png (p99 and
memory against time). The machine should be otherwise idle: this is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from scenes.atomic import replacing, write_text
from scenes.rundir import RunDir

from _common import INTEL

# Every option spelled out, so that a changed default does not change what a name measured.
ONE_BY_ONE = ["--max-batch-size", "1"]
BATCHES = ["--max-batch-size", "8", "--batch-timeout", "0.01"]
CONFIGS = {
    "no-batching": ["--workers", "1", *ONE_BY_ONE],
    "batching": ["--workers", "1", *BATCHES],
    "2-workers": ["--workers", "2", *ONE_BY_ONE],
    "1-thread": ["--workers", "1", "--threads", "1", *ONE_BY_ONE],
    "2-workers-batching": ["--workers", "2", *BATCHES],  # scenes serve's defaults
    "openvino-int8": ["--backend", "openvino-int8", "--workers", "1", *ONE_BY_ONE],
}


def photos_of(run: str, count: int) -> list[tuple[str, bytes]]:
    try:
        paths = [r.path for r in RunDir(run).read_split() if r.split == "val"]
    except Exception:
        paths = []
    paths = [p for p in paths if p.is_file()]
    if not paths:
        paths = sorted((INTEL / "train").rglob("*.jpg"))
    paths = paths[:count]
    if not paths:
        raise SystemExit("no photos: the run has no validation split and ../shared has no data")
    return [(p.name, p.read_bytes()) for p in paths]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: str, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "scenes", "serve", "--run", run, "--port", str(port), *extra]
    with log.open("a") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped at start; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server was not healthy within 300 s; see {log}")


def resident_mb(proc: subprocess.Popen) -> float:
    parent = psutil.Process(proc.pid)
    family = [parent, *parent.children(recursive=True)]
    return sum(p.memory_info().rss for p in family if p.is_running()) / 2**20


async def drive(url: str, photos: list, level: int, requests: int) -> dict:
    """``requests`` POSTs, at most ``level`` at a time; latencies and errors."""
    gate = asyncio.Semaphore(level)
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            name, data = photos[i % len(photos)]
            async with gate:
                started = time.perf_counter()
                try:
                    answer = await client.post(f"{url}/predict", files={"file": (name, data)})
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rps": requests / elapsed,
        "ips": requests / elapsed,  # one photo per request
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "errors": errors,
    }


def local_floor(run: str, photos: list, requests: int) -> dict:
    from scenes.serve.predictor import Predictor

    predictor = Predictor.load(run, device="cpu")
    sources = [io.BytesIO(photos[i % len(photos)][1]) for i in range(requests)]
    predictor.predict_many(sources[:8])  # warm-up
    for source in sources:
        source.seek(0)
    started = time.perf_counter()
    rows = predictor.predict_many(sources)
    elapsed = time.perf_counter() - started
    errors = sum(r.error is not None for r in rows)
    rate = requests / elapsed
    return {"rps": rate, "ips": rate, "p50": None, "p95": None, "p99": None, "errors": errors}


def one_round(args, order: list[str], photos: list, log: Path) -> dict:
    found = {}
    for name in order:
        if name == "local":
            row = local_floor(args.run, photos, args.requests)
            found[name] = {str(level): {**row, "rss_mb": None} for level in args.levels}
            continue
        proc, url = start_server(args.run, CONFIGS[name], log)
        try:
            found[name] = {}
            for level in args.levels:
                row = asyncio.run(drive(url, photos, level, args.requests))
                found[name][str(level)] = {**row, "rss_mb": resident_mb(proc)}
                print(f"  {name} c={level}: {row['ips']:.1f} img/s, p99 {row['p99']:.0f} ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return found


def cell(values: list, digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mid = statistics.median(values)
    return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(rounds: list[dict], names: list[str], levels: list[int]) -> str:
    lines = [
        "| config | concurrency | requests/s | images/s | vs local | p50 ms | p95 ms | p99 ms "
        "| errors | RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        for level in levels:
            rows = [r[name][str(level)] for r in rounds]
            values = [
                cell([row[k] for row in rows], 0 if k[0] in "pr" and k != "rps" else 1)
                for k in KEYS
            ]
            errors = sum(row["errors"] for row in rows)
            # Each round's own local loop is the denominator: the machine's speed drifts.
            ratios = [
                r[name][str(level)]["ips"] / r["local"][str(level)]["ips"]
                for r in rounds
                if "local" in r and name != "local"
            ]
            ratio = cell(ratios, 2)
            lines.append(
                f"| {name} | {level} | {values[0]} | {values[1]} | {ratio} | {values[2]} "
                f"| {values[3]} | {values[4]} | {errors} | {values[5]} |"
            )
    return "\n".join(lines) + "\n"


KEYS = ("rps", "ips", "p50", "p95", "p99", "rss_mb")


def figure(rounds: list[dict], names: list[str], levels: list[int], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in names:
        ips = [statistics.median(r[name][str(v)]["ips"] for r in rounds) for v in levels]
        if name == "local":
            ax.axvline(ips[0], color="gray", linestyle="--", label="local predict_many (floor)")
            continue
        p99 = [statistics.median(r[name][str(v)]["p99"] for r in rounds) for v in levels]
        ax.plot(ips, p99, marker="o", label=name)
        for x, y, level in zip(ips, p99, levels):
            ax.annotate(f"c={level}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("throughput (images/s)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("scenes serve on loopback: p99 latency against throughput")
    with replacing(path, "wb") as fh:
        fig.savefig(fh, format="png", facecolor="white")


def soak(args, photos: list, out: Path) -> None:
    """One server, one concurrency, --soak seconds: does p99 or memory grow?"""
    proc, url = start_server(args.run, CONFIGS[args.soak_config], out / "servers.log")
    windows = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < args.soak:
            row = asyncio.run(drive(url, photos, args.soak_level, args.requests))
            row = {"t": time.monotonic() - started, **row, "rss_mb": resident_mb(proc)}
            windows.append(row)
            print(
                f"  t={row['t']:.0f}s: {row['ips']:.1f} img/s, p99 {row['p99']:.0f} ms, "
                f"RSS {row['rss_mb']:.0f} MB, errors {row['errors']}"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    write_text(out / "serve_soak.json", json.dumps(windows, indent=1))
    first = [w for w in windows if w["t"] <= 60] or windows[:1]
    last = [w for w in windows if w["t"] >= windows[-1]["t"] - 60] or windows[-1:]
    lines = [
        f"{args.soak_config}, concurrency {args.soak_level}, {windows[-1]['t']:.0f} s, "
        f"{len(windows)} windows of {args.requests} requests, {os.cpu_count()} cores\n",
        "| minute | images/s | p99 ms | RSS MB |",
        "| --- | --- | --- | --- |",
    ]
    for label, rows in (("first", first), ("last", last)):
        lines.append(
            f"| {label} | {cell([w['ips'] for w in rows])} | {cell([w['p99'] for w in rows], 0)} "
            f"| {cell([w['rss_mb'] for w in rows], 0)} |"
        )
    lines.append(f"\nerrors: {sum(w['errors'] for w in windows)} of {len(windows) * args.requests}")
    text = "\n".join(lines) + "\n"
    write_text(out / "serve_soak.md", text)
    soak_figure(windows, out / "serve_soak.png", args)
    print(text)
    print(f"wrote {out}/serve_soak.md, .json and .png")


def soak_figure(windows: list[dict], path: Path, args) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    minutes = [w["t"] / 60 for w in windows]
    ax.plot(minutes, [w["p99"] for w in windows], marker=".", color="tab:blue")
    ax.set_xlabel("minutes")
    ax.set_ylabel("p99 latency (ms)", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    mem = ax.twinx()
    mem.plot(minutes, [w["rss_mb"] for w in windows], marker=".", color="tab:orange")
    mem.set_ylabel("server resident memory (MB)", color="tab:orange")
    mem.set_ylim(bottom=0)
    ax.set_title(f"soak: {args.soak_config} at concurrency {args.soak_level}")
    with replacing(path, "wb") as fh:
        fig.savefig(fh, format="png", facecolor="white")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--requests", type=int, default=256, help="per level and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default=",".join([*CONFIGS, "local"]))
    parser.add_argument("--photos", type=int, default=200, help="distinct photos sent")
    parser.add_argument("--out", default=None, help="default: RUN/serve_load")
    parser.add_argument("--soak", type=float, default=0, help="seconds; 0: the load table")
    parser.add_argument("--soak-level", type=int, default=8)
    parser.add_argument("--soak-config", default="2-workers-batching", choices=sorted(CONFIGS))
    args = parser.parse_args()
    args.levels = [int(v) for v in args.levels.split(",")]
    names = args.configs.split(",")
    unknown = set(names) - {*CONFIGS, "local"}
    if unknown:
        raise SystemExit(f"unknown configs: {', '.join(sorted(unknown))}")
    out = Path(args.out or Path(args.run) / "serve_load")
    out.mkdir(parents=True, exist_ok=True)
    photos = photos_of(args.run, args.photos)
    if args.soak:
        soak(args, photos, out)
        return
    rounds = []
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        print(f"round {r + 1}/{args.rounds}: {', '.join(order)}")
        rounds.append(one_round(args, order, photos, out / "servers.log"))
    write_text(out / "serve_load.json", json.dumps(rounds, indent=1))
    text = table(rounds, names, args.levels)
    cores = os.cpu_count()
    header = f"{len(photos)} photos, {args.requests} requests per level, {args.rounds} rounds, {cores} cores\n\n"
    write_text(out / "serve_load.md", header + text)
    figure(rounds, names, args.levels, out / "serve_load.png")
    print(header + text)
    print(f"wrote {out}/serve_load.md, .json and .png")


if __name__ == "__main__":
    main()

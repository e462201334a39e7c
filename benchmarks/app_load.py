"""End-to-end latency through the running app's HTTP API with concurrent clients.

    python benchmarks/app_load.py --run RUN_DIR [--clients 8] [--requests 200] [--no-explain]

Starts `scenes app`'s Gradio server on a free loopback port, then --clients threads, each
with its own gradio_client, send --requests uploads of real photos from
../shared/data/intel/pred in total. Prints failures, p50/p95 latency and requests/s.
Each request returns the top-3 and the heatmap image (labels only with --no-explain).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time

from gradio_client import Client, handle_file

from scenes.serve.app import build_app
from scenes.serve.predict import collect_images
from scenes.serve.predictor import Predictor

from _common import INTEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    args = parser.parse_args()
    photos = collect_images([INTEL / "pred"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(Predictor.load(args.run), explain=args.explain)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))

    def worker() -> None:
        client = Client(url, verbose=False)
        for i in counter:  # shared iterator: exactly --requests in total
            start = time.perf_counter()
            try:
                result = client.predict(
                    handle_file(str(photos[i % len(photos)])), api_name="/predict"
                )
                labels = result[0]  # (labels, heatmap, answer) or (labels, answer)
                ok = len(labels["confidences"]) == 3
            except Exception as exc:  # a failed request is the measurement, not a crash
                ok, result = False, exc
            with lock:
                (
                    latencies.append((time.perf_counter() - start) * 1000)
                    if ok
                    else failures.append(str(result))
                )

    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    demo.close()
    ms = sorted(latencies)
    print(
        f"{args.clients} clients, {args.requests} requests: {len(failures)} failed\n"
        f"latency p50 {statistics.median(ms):.0f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms, "
        f"{len(ms) / wall:.1f} requests/s"
    )
    for f in failures[:5]:
        print("  failure:", f[:200])


if __name__ == "__main__":
    main()

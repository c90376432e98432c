"""Local endpoint: latency and throughput under 8 concurrent clients, failed requests across 10 model swaps,
and one-row and /ping latency while other clients send maximum-size batches (mixed load).

    .venv/bin/python bench/endpoint_latency.py [--seconds 10] [--clients 8] [--big-clients 2] [--small-clients 4]

Starts the real local backend (a separate process), deploys an XGBoost model
with the churn dataset's 67 features, then drives single-row text/csv requests
from keep-alive HTTP clients. Printed beside: in-process ``Booster.inplace_predict``
on the same rows (the floor the server adds its overhead to).
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.aws_doubles import free_port  # noqa: E402
from tests.local_backend import LocalBackend, model_archive  # noqa: E402

FEATURES = 67


def train_archive(seed: int):
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, FEATURES)).astype("float32")
    y = (x[:, 0] + x[:, 1] * 0.5 + rng.normal(scale=0.5, size=5000) > 0).astype("float32")
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=100,
    )
    return booster, model_archive(booster), x[:1000]


def register(server: LocalBackend, name: str, archive: bytes) -> None:
    server.register_model(name, archive)


def wait_serving(server: LocalBackend, endpoint: str, config: str) -> None:
    sagemaker = server.client("sagemaker")
    for _ in range(600):
        answer = sagemaker.describe_endpoint(EndpointName=endpoint)
        if answer["EndpointStatus"] == "InService" and answer.get("EndpointConfigName") == config:
            return
        if answer.get("FailureReason"):
            raise RuntimeError(answer["FailureReason"])
        time.sleep(0.05)
    raise RuntimeError("endpoint did not become InService")


def load(server: LocalBackend, endpoint: str, rows: list[bytes], clients: int, seconds: float, during=None):
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop = threading.Event()

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        path = f"/endpoints/{endpoint}/invocations"
        i = slot
        deadline = time.monotonic() + seconds + 120  # bounded even if `during` hangs
        while not stop.is_set() and time.monotonic() < deadline:
            body = rows[i % len(rows)]
            i += clients
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "text/csv"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            latencies[slot].append(time.perf_counter() - started)
            if not ok:
                failures[slot] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    if during:
        during()
    else:
        time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return flat, sum(failures), elapsed


def run_wrk(server: LocalBackend, endpoint: str, row: str, connections: int, seconds: float):
    """The same load from wrk, whose C client costs far less CPU than Python threads: (p50, p99, rps, n, errors)."""
    import re
    import shutil
    import subprocess

    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = "{row}"\nwrk.headers["Content-Type"] = "text/csv"\n')
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            script.name,
            f"{server.url}/endpoints/{endpoint}/invocations",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    Path(script.name).unlink()

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    return ms("50%"), ms("99%"), float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), requests, errors


def max_size_batch(sample) -> bytes:
    """As many rows as one request may carry: under both the 6 MB body limit and the row limit."""
    from localaws.serving import MAX_BODY_BYTES, MAX_ROWS

    lines: list[bytes] = []
    size = 0
    i = 0
    while len(lines) < MAX_ROWS:
        line = (",".join(f"{v:.7f}" for v in sample[i % len(sample)]) + "\n").encode()
        if size + len(line) > MAX_BODY_BYTES:
            break
        lines.append(line)
        size += len(line)
        i += 1
    return b"".join(lines)


def mixed(
    server: LocalBackend,
    endpoint: str,
    rows: list[bytes],
    big: bytes,
    small_clients: int,
    big_clients: int,
    seconds: float,
):
    """One-row clients and a /ping client, with ``big_clients`` sending ``big`` meanwhile: latencies per kind."""
    results: dict[str, list[float]] = {"row": [], "ping": [], "big": []}
    failures = {"row": 0, "ping": 0, "big": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client(kind: str, slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        path = "/ping" if kind == "ping" else f"/endpoints/{endpoint}/invocations"
        mine: list[float] = []
        bad = 0
        i = slot
        while not stop.is_set():
            body = big if kind == "big" else rows[i % len(rows)]
            i += 1
            started = time.perf_counter()
            try:
                if kind == "ping":
                    conn.request("GET", path)
                else:
                    conn.request("POST", path, body=body, headers={"Content-Type": "text/csv"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            mine.append(time.perf_counter() - started)
            bad += not ok
            if kind == "ping":
                time.sleep(0.005)  # a health check polls; it does not saturate
        conn.close()
        with lock:
            results[kind] += mine
            failures[kind] += bad

    threads = [threading.Thread(target=client, args=("row", i)) for i in range(small_clients)]
    threads.append(threading.Thread(target=client, args=("ping", 0)))
    threads += [threading.Thread(target=client, args=("big", i)) for i in range(big_clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return {kind: sorted(values) for kind, values in results.items()}, failures


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--big-clients", type=int, default=2, help="mixed load: clients sending maximum-size batches")
    parser.add_argument("--small-clients", type=int, default=4, help="mixed load: clients sending one row")
    args = parser.parse_args()

    import numpy as np

    booster, archive, sample = train_archive(1)
    rows = [(",".join(f"{v:.5f}" for v in row)).encode() for row in sample]

    # In-process floor: one row at a time, the same rows.
    booster.set_param({"nthread": 1})
    inproc = []
    for row in sample[:1000]:
        started = time.perf_counter()
        booster.inplace_predict(row.reshape(1, -1))
        inproc.append(time.perf_counter() - started)
    inproc.sort()

    with tempfile.TemporaryDirectory() as data:
        server = LocalBackend(Path(data), free_port()).start()
        try:
            register(server, "bench-0", archive)
            server.client("sagemaker").create_endpoint(EndpointName="bench", EndpointConfigName="bench-0")
            wait_serving(server, "bench", "bench-0")
            load(server, "bench", rows, args.clients, 1.0)  # warm-up
            latencies, failed, elapsed = load(server, "bench", rows, args.clients, args.seconds)

            swap_archives = [train_archive(10 + i)[1] for i in range(args.swaps)]
            for i, blob in enumerate(swap_archives):
                register(server, f"bench-swap-{i}", blob)

            def swaps() -> None:
                sagemaker = server.client("sagemaker")
                for i in range(args.swaps):
                    sagemaker.update_endpoint(EndpointName="bench", EndpointConfigName=f"bench-swap-{i}")
                    wait_serving(server, "bench", f"bench-swap-{i}")
                    time.sleep(0.3)

            swap_latencies, swap_failed, swap_elapsed = load(server, "bench", rows, args.clients, 0, during=swaps)
            wrk = run_wrk(server, "bench", rows[0].decode(), args.clients, args.seconds)
            big = max_size_batch(sample)
            unloaded, unloaded_failed = mixed(server, "bench", rows, big, args.small_clients, 0, args.seconds)
            loaded, loaded_failed = mixed(
                server, "bench", rows, big, args.small_clients, args.big_clients, args.seconds
            )
        finally:
            server.stop()

    ms = 1000.0
    print(f"{'measure':<44} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9} {'requests':>9} {'failed':>7}")
    print(
        f"{'in-process Booster.inplace_predict (1 row)':<44} {percentile(inproc, 0.5) * ms:8.3f} "
        f"{percentile(inproc, 0.99) * ms:8.3f} {len(inproc) / sum(inproc):9.0f} {len(inproc):9d} {'-':>7}"
    )
    print(
        f"{f'HTTP, {args.clients} clients, 1 row/request':<44} {percentile(latencies, 0.5) * ms:8.2f} "
        f"{percentile(latencies, 0.99) * ms:8.2f} {len(latencies) / elapsed:9.0f} {len(latencies):9d} {failed:7d}"
    )
    print(
        f"{f'HTTP during {args.swaps} model swaps':<44} {percentile(swap_latencies, 0.5) * ms:8.2f} "
        f"{percentile(swap_latencies, 0.99) * ms:8.2f} {len(swap_latencies) / swap_elapsed:9.0f} "
        f"{len(swap_latencies):9d} {swap_failed:7d}"
    )
    if wrk:
        print(
            f"{f'wrk (C client), {args.clients} connections':<44} "
            f"{wrk[0]:8.2f} {wrk[1]:8.2f} {wrk[2]:9.0f} {wrk[3]:9d} {wrk[4]:7d}"
        )
    else:
        print("(install wrk, e.g. apt-get install wrk, for a C client that leaves the cores to the server)")
    big_rows = big.count(b"\n")
    print(
        f"\nmixed load: {args.small_clients} one-row clients + a /ping poller, "
        f"then with {args.big_clients} clients sending {big_rows}-row batches ({len(big) / 1e6:.1f} MB)"
    )
    print(f"{'measure':<44} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'failed':>7} {'p50 vs unloaded':>16}")
    for kind, label in (("row", "one row"), ("ping", "/ping")):
        base = percentile(unloaded[kind], 0.5)
        for name, figures, failed in (
            ("unloaded", unloaded, unloaded_failed),
            (f"with {args.big_clients} max-size clients", loaded, loaded_failed),
        ):
            p50 = percentile(figures[kind], 0.5)
            print(
                f"{f'{label}, {name}':<44} {p50 * ms:8.2f} {percentile(figures[kind], 0.99) * ms:8.2f} "
                f"{len(figures[kind]):9d} {failed[kind]:7d} {p50 / base:15.2f}x"
            )
    if loaded["big"]:
        print(
            f"{f'max-size batch ({big_rows} rows)':<44} {percentile(loaded['big'], 0.5) * ms:8.1f} "
            f"{percentile(loaded['big'], 0.99) * ms:8.1f} {len(loaded['big']):9d} {loaded_failed['big']:7d}"
        )
    print(
        "\ntargets: p50 <= 5 ms, >= 500 req/s, 0 failed requests during swaps; mixed load: one-row and /ping "
        "p50 within 2x of unloaded; "
        f"machine: {__import__('os').cpu_count()} cores"
    )
    _ = np  # numpy is xgboost's input type
    return 0


if __name__ == "__main__":
    sys.exit(main())

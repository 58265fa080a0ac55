"""Save latency through the contents API: sync mode vs stock local vs s3contents.

Three user servers run side by side against one moto S3 server on loopback: Code Pilot
in sync mode (local file + S3 object before the reply), jupyter-server's stock
AsyncLargeFileManager (local disk only) and s3contents' S3ContentsManager (S3 only).
Each saves the same 10 KB and 1 MB files repeatedly, in alternation; p50/p99 per kind.
"""

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.jupyterserver import STOCK_MANAGER, start_jupyter_server
from tests.support.s3server import start_s3_server
from tests.support.timing import latency_summary

BUCKET = "bench-save"
SIZES = {"10KB": 10 * 1024, "1MB": 1024 * 1024}
ROUNDS = {"10KB": 100, "1MB": 40}


def main():
    s3 = start_s3_server(relay=False)
    s3.create_bucket(BUCKET)
    s3_env = {**s3.env, "CODEPILOT_S3_BUCKET": BUCKET, "CODEPILOT_WORKSPACE_USER": "bench"}
    servers = {}
    try:
        servers["sync"] = start_jupyter_server(Path(tempfile.mkdtemp()), {**s3_env})
        servers["stock_local"] = start_jupyter_server(
            Path(tempfile.mkdtemp()),
            {"CODEPILOT_STORAGE": "local"},
            args=(f"--ServerApp.contents_manager_class={STOCK_MANAGER}",),
        )
        servers["s3contents"] = start_jupyter_server(
            Path(tempfile.mkdtemp()),
            {**s3_env, "CODEPILOT_STORAGE": "s3", "CODEPILOT_WORKSPACE_USER": "bench-s3"},
        )
        timings = {kind: {size: [] for size in SIZES} for kind in servers}
        for size_name, size in SIZES.items():
            for round_number in range(ROUNDS[size_name]):
                data = os.urandom(size)
                model = json.dumps(
                    {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
                )
                for kind, server in servers.items():  # alternate, so noise hits all alike
                    started = time.perf_counter()
                    response = server.contents("PUT", f"file-{size_name}.bin", data=model)
                    elapsed = time.perf_counter() - started
                    assert response.status_code in (200, 201), (kind, response.text)
                    if round_number >= 3:  # warm-up
                        timings[kind][size_name].append(elapsed * 1000)
    finally:
        for server in servers.values():
            server.stop()
        s3.stop()

    result = {
        kind: {size: latency_summary(values, digits=2) for size, values in by_size.items()}
        for kind, by_size in timings.items()
    }
    print(json.dumps({"benchmark": "save_latency", **result}))
    print(
        "save p50/p99 ms: "
        + "; ".join(
            f"{kind} "
            + ", ".join(
                f"{size} {stats['p50_ms']}/{stats['p99_ms']}" for size, stats in by_size.items()
            )
            for kind, by_size in result.items()
        )
    )


if __name__ == "__main__":
    main()

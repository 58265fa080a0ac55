"""Small saves while classmates install: Code Pilot's workspace manager against stock's.

``--installs`` processes (default 10) copy jedi's and botocore's package trees (7,800
files, 65 MB) onto the workspaces' disk and byte-compile them, again and again, as
``bench_class_load.py``'s installers do. Meanwhile one client saves a 2 KB file every
50 ms through the contents API of two servers side by side, local mode: Code Pilot's
(``WorkspaceFileManager``) and the stock ``AsyncLargeFileManager``; a second client
polls each server's ``/api/status`` every 10 ms, as a terminal's keystrokes would
arrive. Printed: save p50/p99 and the status replies' p99/max per server (the event
loop's stalls), then one summary line.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_stall import poll_status
from tests.support.jupyterserver import STOCK_MANAGER, start_jupyter_server
from tests.support.timing import percentile

INSTALL_TREES = " ".join(
    str(Path(__import__(name).__file__).parent) for name in ("jedi", "botocore")
)
CONTENT = "x = 1\n" * 340  # about 2 KB


def start_installs(count: int, disk: Path) -> list[subprocess.Popen]:
    """Install-sized bursts in a loop, each in a folder of its own on ``disk``."""
    script = (
        f"while :; do mkdir -p $D && cp -r {INSTALL_TREES} $D/ && "
        f"{sys.executable} -m compileall -q $D >/dev/null; rm -rf $D; done"
    )
    return [
        subprocess.Popen(
            ["sh", "-c", script], env={"D": str(disk / f"install-{number}")}, start_new_session=True
        )
        for number in range(count)
    ]


def save_in_turn(servers: dict, seconds: float) -> dict[str, list[float]]:
    """Saves to each server in turn every 50 ms; their times in ms."""
    times = {kind: [] for kind in servers}
    until = time.monotonic() + seconds
    number = 0
    while time.monotonic() < until:
        for kind, server in servers.items():
            started = time.perf_counter()
            response = server.put_text(f"notes-{number % 5}.py", CONTENT)
            assert response.status_code in (200, 201), response.text
            times[kind].append((time.perf_counter() - started) * 1000)
        number += 1
        time.sleep(0.05)
    return times


def figures(samples: list[float]) -> dict:
    return {
        "p50_ms": round(percentile(samples, 0.5), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "max_ms": round(max(samples), 1),
        "n": len(samples),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=40)
    options = parser.parse_args()

    disk = Path(tempfile.mkdtemp(prefix="busy-disk-", dir="/var/tmp"))
    servers, installs, pollers = {}, [], []
    stop = threading.Event()
    delays = {}
    try:
        servers["codepilot"] = start_jupyter_server(
            Path(tempfile.mkdtemp(dir=disk)), {"CODEPILOT_STORAGE": "local"}
        )
        servers["stock"] = start_jupyter_server(
            Path(tempfile.mkdtemp(dir=disk)),
            {"CODEPILOT_STORAGE": "local"},
            args=(f"--ServerApp.contents_manager_class={STOCK_MANAGER}",),
        )
        installs = start_installs(options.installs, disk)
        time.sleep(3)  # the installs under way
        for kind, server in servers.items():
            delays[kind] = []
            poller = threading.Thread(target=poll_status, args=(server, stop, delays[kind]))
            poller.start()
            pollers.append(poller)
        saves = save_in_turn(servers, options.seconds)
    finally:
        stop.set()
        for poller in pollers:
            poller.join()
        for install in installs:  # the shell and its cp or compileall
            os.killpg(install.pid, signal.SIGKILL)
            install.wait()
        for server in servers.values():
            server.stop()
        subprocess.run(["rm", "-rf", str(disk)], check=False)

    result = {
        kind: {"save": figures(saves[kind]), "status": figures(delays[kind])} for kind in servers
    }
    print(json.dumps({"benchmark": "busy_disk_save", "installs": options.installs, **result}))
    ours, stock = result["codepilot"], result["stock"]
    print(
        f"2 KB saves beside {options.installs} installs: save p99 "
        f"{ours['save']['p99_ms']} ms against stock's {stock['save']['p99_ms']} ms; "
        f"the server's longest status reply {ours['status']['max_ms']} ms against "
        f"{stock['status']['max_ms']} ms (p99 {ours['status']['p99_ms']} against "
        f"{stock['status']['p99_ms']})"
    )


if __name__ == "__main__":
    main()

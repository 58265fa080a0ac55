"""Stop means pushed: a server stopped through the hub (the Stop button, the culler: a
REST DELETE, which JupyterHub's local spawner turns into SIGINT, then SIGTERM) flushes
what its terminals wrote, as a pod stopped with SIGTERM does. Real hub, real server,
real terminal, moto's S3 API.
"""

import pytest

from .support.s3hub import s3_hub_fixture
from .support.s3server import s3_server_fixture
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.integration

BUCKET = "stops"
PREFIX = "course"
FILES = 300

s3 = s3_server_fixture(buckets=(BUCKET,))
s3_hub = s3_hub_fixture(BUCKET, PREFIX)


def test_the_hubs_stop_pushes_what_a_terminal_wrote_just_before(s3_hub, s3):
    s3_hub.create_user("paula")
    s3_hub.start_server("paula")
    token = s3_hub.user_token("paula")
    keys = f"{PREFIX}/users/paula/default/"
    with s3_hub.open_terminal("paula", token) as ws:
        script = (
            f"mkdir -p work && for i in $(seq {FILES}); do echo edited $i > work/f$i.txt; done"
            " && printf latin > \"$(printf 'caf\\351.txt')\" && echo WRIT''TEN"
        )
        # The quotes keep the echoed command line from matching: only the shell's output does.
        run_in_terminal(ws, script, "WRITTEN", timeout=60)
    s3_hub.stop_server("paula")  # at once: the watcher has not pushed most of it yet

    expected = {f"{keys}work/f{i}.txt": f"edited {i}\n".encode() for i in range(1, FILES + 1)}
    expected[f"{keys}%%caf%E9.txt"] = b"latin"
    objects = s3.objects(BUCKET, keys)
    missing = sorted(key for key, data in expected.items() if objects.get(key) != data)
    assert not missing, f"{len(missing)} files not in S3 after Stop, e.g. {missing[:3]}"
    assert "workspace flushed" in s3_hub.log()


def test_the_hubs_stop_ends_a_server_whose_s3_hangs_within_the_interrupt(s3_hub, s3):
    s3_hub.create_user("quinn")
    s3_hub.start_server("quinn")
    token = s3_hub.user_token("quinn")
    workspace = s3_hub.data_dir / "workspaces" / "quinn" / "default"
    with s3.hang(), s3_hub.open_terminal("quinn", token) as ws:
        run_in_terminal(ws, "echo stranded > stranded.txt && echo WRIT''TEN", "WRITTEN")
        s3_hub.stop_server("quinn")
    log = s3_hub.log()
    assert "could not push to S3 before stopping" in log and "stranded.txt" in log
    # SIGINT was enough: the spawner never had to send SIGTERM after its interrupt_timeout.
    assert "received signal 15" not in log
    assert (workspace / "stranded.txt").read_text() == "stranded\n"

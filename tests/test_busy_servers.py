"""Busy servers yield the CPU (``onemachine/busyservers.py``): the rules, then real cgroups
with a spinning server and an idle one."""

import contextlib
import os
import subprocess
import sys
import time
import uuid

import pytest

from codepilot_spawner.onemachine.busyservers import (
    BusyPolicy,
    BusyServers,
    still_busy,
    wanted_seconds_of,
    wanted_seconds_v2,
    weight_file,
)
from codepilot_spawner.onemachine.cgroups import Limits, ServerCgroup, machine_hierarchy

POLICY = BusyPolicy()


def test_busy_from_half_a_cpu_and_quiet_again_under_a_fifth():
    assert not still_busy(False, 0.4, POLICY)
    assert still_busy(False, 0.5, POLICY)
    assert still_busy(True, 0.3, POLICY)  # a pause in a build does not flip it back
    assert not still_busy(True, 0.1, POLICY)


def test_a_busy_server_gets_an_eighth_of_the_weight_in_either_cgroup_version():
    assert weight_file(1, False, POLICY) == ("cpu.shares", "1024")
    assert weight_file(1, True, POLICY) == ("cpu.shares", "128")
    assert weight_file(2, False, POLICY) == ("cpu.weight", "100")
    assert weight_file(2, True, POLICY) == ("cpu.weight", "12")
    assert weight_file(2, True, BusyPolicy(busy_weight=0.001)) == ("cpu.weight", "2")


def test_what_a_server_wants_is_its_cpu_time_and_its_wait_for_a_cpu():
    pressure = "some avg10=1.00 avg60=0.50 avg300=0.10 total=500000\nfull avg10=0 total=1\n"
    assert wanted_seconds_v2("usage_usec 2500000\nuser_usec 2000000\n", pressure) == 3.0
    assert wanted_seconds_v2("", "") == 0.0
    assert wanted_seconds_of(os.getpid()) > 0
    assert wanted_seconds_of(2**22 + 1) is None  # no such process: ended, not an error


@pytest.mark.integration
@pytest.mark.root
def test_a_spinning_server_is_weighted_down_and_back_while_an_idle_one_keeps_its_weight():
    hierarchy = machine_hierarchy()
    if hierarchy is None:
        pytest.skip("no cgroup hierarchy with memory, cpu and pids")
    parent = f"codepilot-test/{uuid.uuid4().hex[:8]}"
    groups = {name: ServerCgroup(hierarchy, f"{parent}/{name}") for name in ("spins", "idles")}
    processes = []
    try:
        for name, code in (("spins", "while True: pass"), ("idles", "import time; time.sleep(60)")):
            groups[name].create(Limits(cpus=1))
            process = subprocess.Popen([sys.executable, "-c", code])
            processes.append(process)
            for procs in groups[name].procs_files:
                with open(procs, "w") as joining:
                    joining.write(str(process.pid))
        watcher = BusyServers(hierarchy, parent, BusyPolicy(window=0.5))
        name, _ = weight_file(hierarchy.version, False, POLICY)

        def weight(group: str) -> str:
            return groups[group].count("cpu", name)

        watcher.scan(0.5)  # the first reading
        time.sleep(0.5)
        watcher.scan(0.5)
        assert watcher.busy == {groups["spins"].path}
        assert weight("spins") == weight_file(hierarchy.version, True, POLICY)[1]
        assert weight("idles") == weight_file(hierarchy.version, False, POLICY)[1]

        processes[0].kill()
        processes[0].wait()
        time.sleep(0.5)
        watcher.scan(0.5)
        assert watcher.busy == set()
        assert weight("spins") == weight_file(hierarchy.version, False, POLICY)[1]
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for group in groups.values():
            group.kill_all()
            group.remove()
        for root in set(hierarchy.roots.values()):
            for path in (f"{root}/{parent}", f"{root}/codepilot-test"):
                with contextlib.suppress(OSError):  # another test's folder may be there
                    os.rmdir(path)

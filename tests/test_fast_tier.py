"""The fast tier's guard: inside ``refused()`` no way of starting a process gets through,
and outside it everything works again."""

import asyncio
import os
import subprocess

import pytest

from .support.noprocesses import ProcessStarted, refused


async def start_with_asyncio():
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()


@pytest.mark.parametrize(
    "start",
    [
        lambda: subprocess.run(["true"], check=True),
        lambda: os.system("true"),
        lambda: os.posix_spawnp("true", ["true"], dict(os.environ)),
        lambda: asyncio.run(start_with_asyncio()),
    ],
    ids=["subprocess", "os.system", "posix_spawnp", "asyncio"],
)
def test_every_way_to_start_a_process_is_refused(start):
    with refused(), pytest.raises(ProcessStarted, match=r"mark it @pytest\.mark\.integration"):
        start()


def test_a_broad_except_does_not_hide_the_refusal():
    def careless():
        try:
            subprocess.run(["true"], check=True)
        except Exception:
            return "hidden"

    with refused(), pytest.raises(ProcessStarted):
        careless()


@pytest.mark.integration
def test_processes_start_again_after_the_block():
    with refused():
        pass
    assert subprocess.run(["true"]).returncode == 0

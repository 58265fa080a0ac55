"""What ``make up`` says about the machine's disk writeback (``onemachine/writeback.py``)."""

import pytest

from codepilot_spawner.onemachine.writeback import (
    ADVISED_BYTES,
    background_threshold,
    machine_writeback,
    machine_writeback_note,
    writeback_note,
)

GIB = 1024**3
MIB = 1024**2


def test_the_bytes_setting_wins_over_the_ratio():
    assert background_threshold(64 * MIB, 0, 24 * GIB) == 64 * MIB
    assert background_threshold(0, 10, 24 * GIB) == 24 * GIB // 10


def test_the_kernel_default_on_a_class_machine_gets_the_advice_with_its_command():
    note = writeback_note(0, 10, 24 * GIB)
    assert "once 2.4 GiB wait (vm.dirty_background_ratio 10)" in note
    assert f"sysctl -w vm.dirty_background_bytes={ADVISED_BYTES}" in note
    assert ADVISED_BYTES == 64 * MIB


@pytest.mark.parametrize(
    ("background_bytes", "ratio", "memory", "said"),
    [
        (64 * MIB, 0, 24 * GIB, "once 64 MiB wait (vm.dirty_background_bytes 67108864)"),
        (0, 10, 2 * GIB, "once 204 MiB wait (vm.dirty_background_ratio 10)"),
        (0, 1, 24 * GIB, "once 245 MiB wait (vm.dirty_background_ratio 1)"),
    ],
)
def test_a_threshold_up_to_256_mib_is_named_without_advice(background_bytes, ratio, memory, said):
    note = writeback_note(background_bytes, ratio, memory)
    assert note.strip() == f"Disk writeback: {said}"
    assert "sysctl" not in note


def test_a_large_bytes_setting_gets_the_advice_too():
    note = writeback_note(512 * MIB, 0, 24 * GIB)
    assert "once 512 MiB wait (vm.dirty_background_bytes 536870912)" in note
    assert "sysctl -w" in note


def test_this_machine_is_read_from_proc():
    background_bytes, ratio = machine_writeback()
    assert background_bytes >= 0 and 0 <= ratio <= 100
    # The kernel keeps one of the two: writing either zeroes the other.
    assert background_bytes == 0 or ratio == 0
    assert machine_writeback_note().startswith("  Disk writeback: once ")

"""What ``make up`` says about the machine's disk writeback, for a class on one disk.

Linux writes what programs wrote out in the background once ``vm.dirty_background_bytes``
(or else ``vm.dirty_background_ratio`` percent of memory) is waiting, or after 30 s; and
it writes out everything waiting at once when any memory cgroup reaches its limit with a
page of its own not yet written. Ten classmates' installs leave hundreds of MB waiting,
and while that goes out every save's fsync waits behind it (ext4's journal). A threshold
of 64 MB spreads that writing over the installs. The setting is the machine's: ``make
up`` names it and leaves it as it is.
"""

from pathlib import Path

VM = Path("/proc/sys/vm")
ADVISED_BYTES = 64 * 1024**2
# Above this, a class's installs wait in memory long enough to stall every save at once.
ADVISE_ABOVE_BYTES = 256 * 1024**2


def background_threshold(background_bytes: int, background_ratio: int, memory_bytes: int) -> int:
    """Bytes waiting before background writeback starts; with the ratio, a share of all
    memory (a little above the kernel's figure, which counts only what it could free)."""
    return background_bytes or memory_bytes * background_ratio // 100


def size_text(size: int) -> str:
    """``2.4 GiB``, ``64 MiB``."""
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 else f"{size // 1024**2} MiB"


def writeback_note(background_bytes: int, background_ratio: int, memory_bytes: int) -> str:
    """A line for the start banner: the threshold, and the advised one when it is higher."""
    threshold = background_threshold(background_bytes, background_ratio, memory_bytes)
    setting = (
        f"vm.dirty_background_bytes {background_bytes}"
        if background_bytes
        else f"vm.dirty_background_ratio {background_ratio}"
    )
    line = f"  Disk writeback: once {size_text(threshold)} wait ({setting})"
    if threshold <= ADVISE_ABOVE_BYTES:
        return line
    return (
        f"{line}; a class's installs then stall every save at once: "
        f"`sysctl -w vm.dirty_background_bytes={ADVISED_BYTES}` (README, Disk writeback)"
    )


def machine_writeback() -> tuple[int, int]:
    """(``vm.dirty_background_bytes``, ``vm.dirty_background_ratio``): one of them is 0,
    the kernel zeroing the other when either is written."""
    background_bytes = int((VM / "dirty_background_bytes").read_text())
    return background_bytes, int((VM / "dirty_background_ratio").read_text())


def machine_writeback_note() -> str | None:
    """``writeback_note`` for this machine; None where /proc does not say."""
    try:
        background_bytes, background_ratio = machine_writeback()
        with open("/proc/meminfo") as meminfo:
            memory_kb = int(meminfo.readline().split()[1])  # MemTotal
    except (OSError, ValueError, IndexError):
        return None
    return writeback_note(background_bytes, background_ratio, memory_kb * 1024)

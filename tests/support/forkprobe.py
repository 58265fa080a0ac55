"""Run by the fork server in a server's place (``python -m tests.support.forkprobe``): records
what a forked child got, as JSON in the file named by its first argument.

The other arguments are the two halves of a secret that must not be in this process's
memory; the halves are searched for as one piece, which only a leak would contain.
"""

import contextlib
import json
import os
import random
import re
import sys
import tempfile


def readable_regions():
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            start, end = (int(address, 16) for address in fields[0].split("-"))
            yield start, end


def memory_holds(first: bytes, second: bytes) -> bool:
    """Whether ``first + second`` occurs anywhere in this process's memory."""
    pattern = re.compile(re.escape(first))
    with open("/proc/self/mem", "rb", buffering=0) as memory:
        for start, end in readable_regions():
            try:
                memory.seek(start)
                data = memory.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for match in pattern.finditer(data):
                tail = match.end()
                if data[tail : tail + len(second)] == second:
                    return True
    return False


def main() -> None:
    output, first, second = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    descriptors = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            descriptors[name] = os.readlink(f"/proc/self/fd/{name}")
    with open("/proc/self/environ", "rb") as f:
        proc_environ = [entry.decode() for entry in f.read().split(b"\0") if entry]
    record = {
        "environ": dict(os.environ),
        "proc_environ": proc_environ,
        "descriptors": descriptors,
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())],
        "session_leader": os.getsid(0) == os.getpid(),
        "cwd": os.getcwd(),
        "random": random.random(),
        "tempdir": tempfile.gettempdir(),
        "temp_name": os.path.basename(tempfile.mktemp()),  # a name only, nothing created
        "path": sys.path,
        "holds_secret": memory_holds(first, second),
    }
    with open(output, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main()

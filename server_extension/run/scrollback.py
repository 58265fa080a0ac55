"""The run's scrollback: what a viewer who attaches late is sent, and what a crashed run
leaves in the Run panel, bounded by size rather than by count of reads.

terminado keeps each terminal's recent output in ``read_buffer``, a deque of up to 1000
reads of up to 64 KiB each: 64 MB for a run that floods output. This deque holds the
same reads but drops the oldest once they add up to more than ``max_chars``.
"""

import re
from collections import deque

# CSI (colours, cursor moves), OSC (titles, links) and two-byte escapes.
ANSI_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class BoundedScrollback(deque):
    """A deque of output strings holding at most ``max_chars`` characters in all."""

    def __init__(self, max_chars: int, chunks=()):
        super().__init__()
        self.max_chars = max_chars
        self.chars = 0
        self.extend(chunks)

    def append(self, chunk: str) -> None:
        if len(chunk) > self.max_chars:
            chunk = chunk[-self.max_chars :]
        super().append(chunk)
        self.chars += len(chunk)
        while self.chars > self.max_chars:
            self.chars -= len(self.popleft())

    def extend(self, chunks) -> None:
        # deque's own extend would bypass append, and the cap with it.
        for chunk in chunks:
            self.append(chunk)

    def copy(self) -> deque:
        # terminado replays a copy to a new viewer, popping from it as it sends.
        return deque(self)

    def text(self) -> str:
        return "".join(self)


def plain_tail(text: str, max_lines: int) -> str:
    """The last ``max_lines`` lines of terminal output, without escape sequences, as a
    page shows it: carriage-return redraws (progress bars) keep their last state."""
    lines = ANSI_ESCAPE.sub("", text).replace("\r\n", "\n").split("\n")
    shown = [line.rsplit("\r", 1)[-1] for line in lines[-max_lines:]]
    return "\n".join(shown)

"""Package entry points read once by the fork server, then answered from memory.

``importlib.metadata.entry_points`` opens and parses the ``entry_points.txt`` of every
installed distribution at each call, and a server calls it five times as it starts
(jupyter-lsp: its language-server specs twice, its three kinds of message listeners):
about a fifth of a forked server's start CPU. What is installed does not change under a
running fork server any more than the modules it preloaded (a hub restart reads both
again), so it reads them once and every child it forks answers from that reading.

Only the standard library is imported here: this runs before the server stack, whose
modules bind ``entry_points`` by name when they are imported.
"""

import importlib.metadata


def answering_from(everything):
    """An ``entry_points`` with the original's arguments and answers, from ``everything``
    (what ``entry_points()`` returned): ``select`` returns them all without arguments."""

    def entry_points(**params):
        return everything.select(**params)

    entry_points.__doc__ = importlib.metadata.entry_points.__doc__
    entry_points.remembered = True
    return entry_points


def remember_entry_points() -> None:
    """Make ``importlib.metadata.entry_points`` answer from one reading, taken now, for
    the modules imported after this."""
    if not getattr(importlib.metadata.entry_points, "remembered", False):
        importlib.metadata.entry_points = answering_from(importlib.metadata.entry_points())

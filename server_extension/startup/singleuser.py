"""The user server's launcher: ``python -P -m server_extension.startup.singleuser [args]``.

It is ``jupyterhub-singleuser`` (same arguments, same server) with the imports a server
does not use at start deferred to their first use (``server_extension.startup.deferred``), which
halves the CPU of a plain start. ``-P`` keeps the workspace, the working directory, off
``sys.path``: a student's ``tornado.py`` cannot replace the server's own.
"""

import sys

from .deferred import defer_unused_imports


def main():
    defer_unused_imports()
    from jupyterhub.singleuser import main as singleuser_main

    return singleuser_main()


if __name__ == "__main__":
    sys.exit(main())

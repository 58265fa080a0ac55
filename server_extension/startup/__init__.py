"""How a user server's process starts: the launcher (``singleuser``, what
``codepilot-singleuser`` runs), the imports a server does not need at start deferred to
their first use (``deferred``), and the one-machine fork server (``forkserver``), a root
process on the hub's machine that has the server stack imported and forks each server
from it (the hub's end is ``codepilot_spawner.onemachine.forkclient``)."""

"""The one-machine hub's machinery: its settings, the ``make up`` launcher and passwords,
and the OS plumbing around each server (Unix users, workspaces, sandbox, network
namespaces, cgroups, the fork server's client, stop-all)."""

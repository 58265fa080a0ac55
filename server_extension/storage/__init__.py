"""Workspace storage: local disk, local disk mirrored to S3 (``sync``), or S3 only (``s3``).

S3 keys follow ``codepilot_contracts.layout``. Modules, one job each: ``location``
(where a workspace lives in S3, one value for all the rest), ``ignore`` (what
stays local), ``s3`` (async object I/O), ``manifest`` (what was last synced),
``localtree`` (walking the workspace safely), ``plan`` (what differs and what each path
needs), ``seed`` (a new workspace's starter), ``restore`` (S3 -> disk on start),
``pack`` (the small-files pack), ``snapshots`` (installed folders as archives),
``archive`` (packing and safe unpacking), ``chunkpipe`` (unpacking while downloading),
``engine`` (disk -> S3 while running), ``keeper`` (the engine and the snapshots of a
running server, files first), ``watcher`` (terminal-made changes),
``contents`` (the contents managers), ``s3mode`` (s3contents settings), ``wiring``
(choosing the manager), ``handlers`` (the status route).
"""

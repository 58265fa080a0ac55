"""Workspace S3 sync from a shell: ``python -m server_extension.sync <command>``.

Commands (the workspace folder is ``--root``, default the current directory):

``restore``
    Download what is missing or changed in the workspace from
    ``s3://<bucket>/<prefix>/users/<user>/<server or "default">/``, concurrently, skipping
    files whose size and ETag (or content hash) already match. A first start (nothing
    under that prefix) copies the starter ``--starter`` first. The Kubernetes
    init container and the one-machine spawner run this before the server starts.
    With a bucket, dependency snapshots (``node_modules/``, ``.venv/``) whose lock files
    still match are unpacked alongside; ``--no-snapshots`` restores files only. Without
    a bucket, a new workspace just gets the starter's files.
``push``
    Upload local changes (new, changed and deleted files) to S3.
``pack``
    Push, then upload the small-files pack that lets the next restore take many small
    files in one GET.
``snapshot``
    Push, then save the dependency snapshots that are out of date, and the pack: what a
    stopping server does.
``status``
    Compare without changing anything: local changes not in S3, S3 changes not local.
``seed-starters`` (its old name ``seed-templates`` runs it too)
    Upload the packaged starters to ``<prefix>/templates/<name>/`` (``templates`` is the
    stored name of the starters folder).

Settings are the user server's: ``CODEPILOT_S3_BUCKET``, ``CODEPILOT_S3_PREFIX``,
``CODEPILOT_S3_ENDPOINT_URL``, ``CODEPILOT_S3_REGION``, ``CODEPILOT_STARTER`` (or its old
name ``CODEPILOT_TEMPLATE``), ``CODEPILOT_WORKSPACE_USER`` (default ``JUPYTERHUB_USER``)
and ``CODEPILOT_WORKSPACE_SERVER`` (default ``JUPYTERHUB_SERVER_NAME``), each overridable
by the option of the same name (``--s3-bucket``, ...), read in ``settings.py`` into the
server's own ``WorkspaceLocation``. Without a bucket (or, for a command that needs a
workspace, a user) the command names the variable to set and ends with status 2
(``restore``: as its error record, status 1); ``restore`` without a bucket gives a new
workspace its starter locally. Credentials come from the standard AWS chain.

Progress of ``restore`` (``--progress json``) goes to stdout as one JSON object per
line, for spawners to turn into progress events::

    {"event": "progress", "done": 230, "total": 2000}
    {"event": "done", "total": 2000, "downloaded": 12, "unchanged": 1988, "removed": 0,
     "local_changes": 0, "failed": {}, "starter": "", "seconds": 0.41, "bytes": 48213,
     "from_pack": 0, "snapshots": {"node_modules": "restored"}}

``done``/``total`` count files ("Restoring workspace: 230/2000 files"). Progress lines
come at most every 0.2 s plus one at the end, and the last line is always the ``done``
event (or ``{"event": "error", "message": ...}``, with exit status 1). ``--progress
text`` prints the same for people; the exit status is 0 only when every file was
restored.
"""

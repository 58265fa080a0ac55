"""The contracts between the hub side and the user-server side, each defined once.

``codepilot_spawner`` (in the hub) and ``server_extension`` (in every user server) never
import each other; both import this package, which depends on the standard library only,
so either image can ship it.

Environment (``env``). The hub configures a user server through its environment: every
configurable trait ``c.CodePilot.<name>`` is also ``CODEPILOT_<NAME>`` (``env_name``), and
``settings_environment`` turns a spawner's settings dict into those variables (``None``
left out, booleans ``true``/``false``). Besides the traits, both sides read
``CODEPILOT_S3_CREDENTIALS_EXPIRATION`` (when the server's first S3 keys expire) and
``CODEPILOT_STARTERS_DIR`` (a class's starter folders on one machine); on one machine
every process of a server carries ``WORKSPACE_PROCESS_TAG`` (``PROCESS_TAG``).

Defaults (``defaults``). One value each for what both sides default: the S3 key prefix
``codepilot``, region ``us-east-1``, the preview port 3000 and the default server's
name ``default``.

S3 layout (``layout``). ``<prefix>/users/<user>/<server or "default">/<path>`` is a
workspace, ``<prefix>/templates/<name>/<path>`` a starter; one plain object per
file; a folder exists by what lies below it, and an empty one by its ``<folder>/.s3keep``
(s3contents' layout). Names are single key
segments (``check_segment``). The hub scopes a user's STS credentials to
``user_prefix`` plus read access to ``starters_root``; the server reads and writes
under ``workspace_prefix``, and refuses object keys that would escape the workspace.

Credential broker (``broker``). A hub service, ``codepilot-credentials``, answers
``GET <hub base>services/codepilot-credentials/api/credentials`` (the server's own API
token) with ``{"access_key", "secret_key", "token", "expiry_time"}``; the server reaches it
at ``CODEPILOT_CREDENTIALS_URL`` and renews before expiry.

Restore progress (``restoreprogress``). ``python -P -m server_extension.sync restore
--progress json`` (``RESTORE_COMMAND``) prints one JSON record per line:
``{"event": "progress", "done", "total"}`` with ``bytes_done``/``bytes_total`` when sizes
are known, then ``done`` or ``error``. Both spawners turn the records into spawn-page messages
(``restore_share``, ``restore_message``).

Reserved server names (``servernames``). A named server sits beside the default
server's routes under ``/user/<name>/``, so the top-level route segments of a user
server (``api``, ``lab``, ``preview``, ...) cannot name a server; the hub refuses them
with ``reserved_name_reason``. ``project_name_problem`` holds every rule a new project's
name meets (JupyterHub's format, those names, names in use, the limit): the user
server checks names with it as they are typed in JupyterLab, and before it asks the hub.

Fork server channel (``forking``). On one machine the hub asks its fork server for a
server with a length-prefixed JSON request on the fork server's stdin and reads one JSON
line per answer; the fork server's environment holds ``ENVIRONMENT_SPACE``, the room
each child writes its own environment into.

Network namespaces (``namespaces``). The hub names a server's namespace by its path;
the fork server's child and the preview gateway enter it with
``enter_network_namespace``.

Preview relay (``relay``). On Kubernetes every connection the preview gateway opens to a
server's relay begins with ``start_line(<start id>)``; a relay started with
``--start-id`` closes one that names another start, so a pod IP given to another pod
never carries a viewer to the wrong app. The spawner's state says whether the relay of
a start expects the line. ``start_line(<start id>, <port>)`` names a port of the pod
too (``parse_start_line``), for relays whose start picks ports.

Listening ports (``listening``). The listening TCP sockets of a network namespace, as
its kernel lists them in ``/proc/<task>/net/tcp`` and ``tcp6`` (``read_listeners``); the
previewable ports among them (on the loopback, none of the server's own:
``previewable_ports``) and the app's port (``app_port``: ``PORT`` if it listens, else a
preferred one, else the lowest). The server, the preview gateway and the pod's relay
read them alike.

Port hosts (``porthosts``). Every other listening port of a server is previewed at
``<port>--<label>`` of the preview domain (``port_label``, ``split_port_label``,
``port_url``); a label never holds ``--``.

Run API (``run``). ``<server>/codepilot/api/run`` (``RUN_PATH``) answers the project's
run: ``state`` (one of ``RUN_STATES``) and ``label``, the status bar's words, which the
class page shows too; ``POST`` runs, ``DELETE`` stops.

Starters (``starters``). The packaged starters (``PACKAGED_STARTERS``, in the order the
spawn form offers them, with ``STARTER_TITLES``) are the folders of
``server_extension/starters/``; a starter's name follows ``STARTER_NAME``. A deployment's
own starters live in a folder whose stored name is ``templates`` (``STORED_FOLDER``), in
S3 and on one machine alike.
"""

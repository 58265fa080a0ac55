"""The contracts package: each hub <-> server contract, checked on its own and against the
parts that must agree with it (the starters folder, the standard-library-only rule)."""

import ast
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from codepilot_contracts import (
    broker,
    defaults,
    env,
    forking,
    layout,
    namespaces,
    restoreprogress,
    servernames,
    starters,
)

from .support.hubtools import REPO_ROOT
from .support.jupyterserver import start_jupyter_server

PACKAGE = Path(__file__).resolve().parent.parent / "codepilot_contracts"
STARTERS_FOLDER = Path(__file__).resolve().parent.parent / "server_extension" / "starters"


# --- the package itself ---------------------------------------------------------------------


def _imported_top_level(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_imports_nothing_but_the_standard_library():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 7
    for module in modules:
        foreign = _imported_top_level(module) - set(sys.stdlib_module_names)
        assert not foreign, f"{module.name} imports {foreign}"


def test_the_docstring_describes_every_contract_module():
    import codepilot_contracts

    doc = codepilot_contracts.__doc__
    for module in PACKAGE.glob("*.py"):
        if module.stem != "__init__":
            assert f"(``{module.stem}``)" in doc, module.stem


# --- forking and namespaces -------------------------------------------------------------------


def test_fork_requests_cross_a_pipe_whole_and_the_end_is_seen():
    request = {"argv": ["codepilot-singleuser"], "env": {"A": "é" * 40_000}, "cwd": "/"}
    reader, writer = os.pipe()
    # Bigger than a pipe's buffer: the reader must see it whole however it is split.
    writing = threading.Thread(
        target=lambda: (os.write(writer, forking.encode_request(request)), os.close(writer))
    )
    writing.start()
    try:
        assert forking.read_request(reader) == request
        writing.join()
        assert forking.read_request(reader) is None  # the hub closed the channel
    finally:
        os.close(reader)


def test_a_request_cut_short_is_the_end_not_half_a_request():
    reader, writer = os.pipe()
    os.write(writer, forking.encode_request({"argv": ["x"]})[:-3])
    os.close(writer)
    try:
        assert forking.read_request(reader) is None
    finally:
        os.close(reader)


def test_replies_are_one_json_object_per_line():
    line = forking.encode_reply({"id": 3, "pid": 42})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert forking.parse_reply(line) == {"id": 3, "pid": 42}
    with pytest.raises(ValueError):
        forking.parse_reply(b"[1, 2]\n")
    with pytest.raises(ValueError):
        forking.parse_reply(b"Traceback (most recent call last):\n")


def test_entering_a_namespace_that_is_not_one_says_which_path(tmp_path):
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_text("")
    with pytest.raises(OSError, match=r"setns .*plain-file"):
        namespaces.enter_network_namespace(str(not_a_namespace))


def test_a_sandbox_entry_crosses_the_fork_servers_channel_whole():
    entry = namespaces.SandboxEntry(
        procs_files=(
            "/sys/fs/cgroup/cpu/cp-1/cgroup.procs",
            "/sys/fs/cgroup/pids/cp-1/cgroup.procs",
        ),
        netns="/run/netns/cp-1",
        private_mounts=True,
        tmp_dir="/var/lib/codepilot/tmp/alice",
    )
    reader, writer = os.pipe()
    try:
        os.write(writer, forking.encode_request({"sandbox": entry.to_message()}))
        message = forking.read_request(reader)
    finally:
        os.close(reader), os.close(writer)
    assert namespaces.SandboxEntry.from_message(message["sandbox"]) == entry
    # A request without one (not root) enters nothing.
    assert namespaces.SandboxEntry.from_message(None) == namespaces.SandboxEntry()


def test_joining_a_cgroup_writes_the_joining_process(tmp_path):
    procs = tmp_path / "cgroup.procs"
    namespaces.SandboxEntry(procs_files=(str(procs),)).enter()
    assert procs.read_text() == "0"  # the kernel reads 0 as "the writing process"


# --- env ------------------------------------------------------------------------------------


def test_trait_names_map_onto_codepilot_variables():
    assert env.env_name("preview_port") == "CODEPILOT_PREVIEW_PORT"
    assert env.env_name("credentials_url") == "CODEPILOT_CREDENTIALS_URL"
    for variable in (env.CREDENTIALS_EXPIRATION, env.STARTERS_DIR):
        assert variable.startswith(env.ENV_PREFIX) and variable.isupper()


def test_settings_become_variables_none_left_out_booleans_lowercase():
    assert env.settings_environment(
        {"preview_port": 3000, "s3_bucket": "b", "storage": None, "flag": True, "off": False}
    ) == {
        "CODEPILOT_PREVIEW_PORT": "3000",
        "CODEPILOT_S3_BUCKET": "b",
        "CODEPILOT_FLAG": "true",
        "CODEPILOT_OFF": "false",
    }
    assert env.settings_environment({}) == {}


# --- defaults -------------------------------------------------------------------------------


def test_defaults_have_one_value_each():
    assert (defaults.S3_PREFIX, defaults.S3_REGION) == ("codepilot", "us-east-1")
    assert defaults.PREVIEW_PORT == 3000
    assert defaults.DEFAULT_SERVER == "default"


# --- layout ---------------------------------------------------------------------------------


def test_layout_keys():
    assert layout.user_prefix("cp", "alice") == "cp/users/alice/"
    assert layout.user_prefix("", "alice") == "users/alice/"
    # "templates": the starters folder's stored name, where deployments keep their starters.
    assert layout.starters_root("cp") == "cp/templates/"
    assert layout.starters_root("") == "templates/"
    assert layout.workspace_prefix("cp", "alice") == "cp/users/alice/default/"
    assert layout.workspace_prefix("/a/b/", "alice", "lab2") == "a/b/users/alice/lab2/"
    assert layout.workspace_prefix("a/b/", "bob@x.org") == "a/b/users/bob@x.org/default/"
    assert layout.s3contents_prefix("cp/users/alice/default/") == "cp/users/alice/default"
    assert layout.dir_keep_key("cp/users/a/default/", "src") == "cp/users/a/default/src/.s3keep"
    assert layout.starter_prefix("cp", "flask") == "cp/templates/flask/"
    # A workspace is always under its user's prefix, a starter under the starters root.
    assert layout.workspace_prefix("cp", "bo", "x").startswith(layout.user_prefix("cp", "bo"))
    assert layout.starter_prefix("cp", "t").startswith(layout.starters_root("cp"))
    assert layout.workspace_prefix("cp", "alice", "") == layout.workspace_prefix(
        "cp", "alice", defaults.DEFAULT_SERVER
    )


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00b", None])
def test_names_that_are_not_one_key_segment_are_refused(name):
    with pytest.raises(layout.LayoutError, match="cannot be part of an S3 key"):
        layout.check_segment("user", name)
    with pytest.raises(ValueError):
        layout.user_prefix("cp", name)
    if name:  # an empty server name means the default server
        with pytest.raises(ValueError):
            layout.workspace_prefix("cp", "alice", name)
        with pytest.raises(ValueError):
            layout.starter_prefix("cp", name)


def test_object_keys_round_trip_and_escapes_are_refused():
    prefix = layout.workspace_prefix("cp", "alice")
    key = layout.key_for(prefix, "src/app.py")
    assert layout.relpath_for(prefix, key) == "src/app.py"
    assert layout.dir_keep_key(prefix, "") == prefix + layout.DIR_KEEP
    assert layout.is_dir_keep("a/.s3keep") and layout.dir_of_keep("a/.s3keep") == "a"
    with pytest.raises(layout.LayoutError):
        layout.relpath_for(prefix, "cp/users/bob/default/x")
    for bad in ("", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\x00"):
        assert layout.safe_object_relpath(bad) is None, bad
    assert layout.safe_object_relpath("a/b.txt") == "a/b.txt"
    assert layout.safe_object_relpath("a\\b") == "a\\b"  # a Linux name; its key escapes it


# Names Linux allows and a key cannot hold as they are, as bytes.
ODD_NAMES = (
    b"caf\xe9.txt",  # latin-1, from an unzipped archive
    b"data\\results.csv",
    b"line\nbreak\rand\ttab",
    b"%%starts-like-an-escape",
    b"\xe9" * 255,  # the longest name, every byte escaped
    bytes(range(1, 47)) + bytes(range(48, 256)),  # every byte but NUL and "/"
    "caf\u00e9 \u20ac \U0001f600 \u0085 \ufffe".encode(),  # UTF-8, C1 control, non-character
)


def test_every_linux_file_name_round_trips_through_its_key():
    prefix = layout.workspace_prefix("cp", "alice")
    for raw in ODD_NAMES:
        name = os.fsdecode(raw)
        relpath = f"{name}/{name}" if len(raw) < 200 else name
        key = layout.key_for(prefix, relpath)
        key.encode("utf-8")  # what botocore sends: valid UTF-8, no surrogates
        assert not any(ord(char) < 0x20 or char == "\\" for char in key), key
        assert layout.relpath_for(prefix, key) == relpath
        assert os.fsencode(layout.relpath_for(prefix, key)) == os.fsencode(relpath)
    # Names a key holds as they are keep their keys (and s3contents sees them as they are).
    for plain in ("src/app.py", "50%.txt", "caf\u00e9/\u00fcber.md", ".s3keep", "a b/c"):
        assert layout.key_for(prefix, plain) == prefix + plain


def test_keys_the_layout_never_writes_are_refused_not_guessed():
    prefix = "cp/users/alice/default/"
    for rest in ("a\\b", "x\ty", "%%abc", "%%a%5c", "%%a%2Fb", "%%%00", "%%a%", "%%.", "%%%2E%2E"):
        with pytest.raises(layout.LayoutError):
            layout.relpath_for(prefix, prefix + rest)


def test_a_key_longer_than_s3_allows_is_refused():
    deep = "/".join([os.fsdecode(b"\xe9" * 255)] * 2)
    with pytest.raises(layout.LayoutError, match="1024"):
        layout.key_for("cp/users/alice/default/", deep)


# --- broker ---------------------------------------------------------------------------------


def test_broker_path_under_the_hub_base_url():
    assert broker.credentials_path() == "/services/codepilot-credentials/api/credentials"
    assert broker.credentials_path("/hub-base/") == (
        "/hub-base/services/codepilot-credentials/api/credentials"
    )


def test_broker_body_round_trips():
    body = broker.credentials_body("AK", "SK", "TOKEN", "2030-01-01T00:00:00+00:00")
    assert tuple(body) == broker.RESPONSE_KEYS
    assert broker.parse_credentials_body(json.dumps(body).encode()) == body
    static = broker.credentials_body("AK", "SK", None, None)
    assert broker.parse_credentials_body(json.dumps(static)) == static


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"access_key": "a", "secret_key": "s"}', "lacks token, expiry_time"),
        (b'{"access_key": "", "secret_key": "s", "token": 1, "expiry_time": 2}', "access_key"),
    ],
)
def test_a_bad_broker_body_says_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        broker.parse_credentials_body(data)


# --- restore progress -----------------------------------------------------------------------


def _through_a_line(*counts: int) -> dict:
    """A progress record written as the restore command writes it, then read back."""
    return restoreprogress.parse_line(
        restoreprogress.record_line(restoreprogress.progress_record(*counts))
    )


def test_progress_lines_round_trip():
    line = restoreprogress.record_line(restoreprogress.progress_record(3, 10))
    assert "\n" not in line
    assert restoreprogress.parse_line(line.encode()) == {
        "event": "progress",
        "done": 3,
        "total": 10,
    }
    record = _through_a_line(3, 10, 1_200_000, 48_000_000)
    assert restoreprogress.restore_counts(record) == (3, 10)
    assert restoreprogress.restore_share(record) == 0.025
    assert restoreprogress.restore_message(record) == "Restoring workspace: 1.2/48 MB"
    files = _through_a_line(230, 2000)
    assert restoreprogress.restore_message(files) == "Restoring workspace: 230/2000 files"
    assert restoreprogress.restore_share(_through_a_line(0, 0)) == 1.0


@pytest.mark.parametrize("line", ["", "npm WARN x", "[1, 2]", "42", '"text"', "{broken"])
def test_lines_that_are_not_records_parse_to_nothing(line):
    assert restoreprogress.parse_line(line) == {}
    assert restoreprogress.restore_share(restoreprogress.parse_line(line)) is None


def test_the_last_record_of_a_log_is_found():
    log = "\n".join(
        [
            "starting",
            restoreprogress.record_line(restoreprogress.progress_record(1, 4)),
            restoreprogress.record_line(restoreprogress.progress_record(3, 4)),
            '{"event": "done", "restored": 4}',
            "bye",
        ]
    )
    assert restoreprogress.restore_counts(restoreprogress.last_record(log)) == (3, 4)
    assert restoreprogress.last_record("no records\n{}") == {}
    # Counts that make no sense are not progress.
    assert restoreprogress.restore_counts({"done": 5, "total": 4}) is None
    assert restoreprogress.restore_counts({"done": "1", "total": 4}) is None


def test_the_restore_command_is_the_sync_cli():
    from server_extension.sync.cli import parser

    args = parser().parse_args(restoreprogress.RESTORE_COMMAND[3:])
    assert args.command == "restore" and args.progress == "json"
    assert restoreprogress.RESTORE_COMMAND[:3] == ["-P", "-m", "server_extension.sync"]


@pytest.mark.integration
def test_a_students_module_in_the_workspace_cannot_break_the_restore(tmp_path):
    # The restore runs in the workspace (a pod's workingDir, the local spawner's cwd): a
    # file named like a module it imports must not replace it, or the server never starts.
    import subprocess

    (tmp_path / "json.py").write_text("raise SystemExit('the workspace json.py ran')\n")
    done = subprocess.run(
        [sys.executable, *restoreprogress.RESTORE_COMMAND, "--root", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "CODEPILOT_S3_BUCKET": "", "CODEPILOT_STARTER": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the workspace json.py ran" not in done.stderr
    assert restoreprogress.parse_line(done.stdout.splitlines()[-1])["event"] == "done"


# --- server names ---------------------------------------------------------------------------


def test_reserved_names_are_refused_with_a_reason():
    for name in ("api", "LAB", "Preview"):
        reason = servernames.reserved_name_reason(name)
        assert reason and repr(name) in reason
    assert servernames.reserved_name_reason("lab2") is None
    assert servernames.reserved_name_reason("my-project") is None


def test_project_name_rules_say_why_and_agree_with_jupyterhub():
    from jupyterhub.slugs import is_valid_safe_slug

    problem = servernames.project_name_problem
    names = ["web", "a", "a1", "my-project", "x" * 30, "x" * 31, "", "Web", "1web", "web-",
             "we--b", "we_b", "wéb", "we b", "-web", "notes2", "a-b-c"]  # fmt: skip
    for name in names:
        assert (problem(name, [], 0) is None) == is_valid_safe_slug(name), name
    assert "at most 30" in problem("x" * 31, [], 0)
    assert "'_'" in problem("we_b", [], 0)
    assert "starts with a letter" in problem("1web", [], 0)
    # A reserved name passes JupyterHub's format but is refused, before the limit counts.
    assert "'preview'" in problem("preview", ["a", "b", "c", "d", "e"], 5)
    assert "already have" in problem("web", ["", "web"], 5)
    assert "5 projects" in problem("six", ["", "a", "b", "c", "d", "e"], 5)
    assert problem("five", ["", "a", "b", "c", "d"], 5) is None  # the default one is free
    assert problem("six", ["a", "b", "c", "d", "e"], 0) is None  # 0: no limit


# A route's first segment: a literal (``/api/...``), or a group of literals
# (``/(?P<mode>lab|doc)...``), then whatever follows it
# (an unescaped "." is a wildcard, not part of a name).
_LITERAL_SEGMENT = re.compile(r"^/((?:[\w-]|\\.)+)(.*)$")
_GROUP_SEGMENT = re.compile(r"^/\((?:\?P<\w+>)?((?:[\w|-]|\\.)+)\)(.*)$")


def colliding_names(pattern: str) -> set[str]:
    """Server names whose ``/<name>/...`` paths a route pattern may also match.

    A route that ends with its first segment (``/login$``) takes ``/login`` only, not
    ``/login/...``; catch-alls (``/.*/$``, the 404) have no first segment of their own.
    """
    match = _LITERAL_SEGMENT.match(pattern) or _GROUP_SEGMENT.match(pattern)
    if match is None or match.group(2) == "$":
        return set()
    return {name.replace("\\", "") for name in match.group(1).split("|")}


def test_route_segments_are_parsed():
    assert colliding_names("/api/contents(?P<path>.*)$") == {"api"}
    assert colliding_names("/(?P<mode>lab|doc)(?P<tree>/tree/.*)?$") == {"lab", "doc"}
    assert colliding_names("/view(?P<path>(?:(?:/[^/]+)+|/?))$") == {"view"}
    assert colliding_names("/preview/?(.*)$") == {"preview"}
    assert colliding_names("/a\\.b/x$") == {"a.b"}
    for alone in ("/login$", "/(robots\\.txt|favicon\\.ico)$", "/$", "/.*/$", "(.*)$"):
        assert colliding_names(alone) == set(), alone


@pytest.mark.integration
def test_every_top_level_route_of_a_user_server_is_a_reserved_name():
    # A real server with every installed extension, plus one that lists its routes.
    server = start_jupyter_server(
        Path(tempfile.mkdtemp(prefix="codepilot-routes-")),
        {"PYTHONPATH": str(REPO_ROOT), "CODEPILOT_STORAGE": "local"},
        args=("--ServerApp.jpserver_extensions=tests.apps.route_lister=True",),
    )
    try:
        response = server.api("GET", "/api/test-routes")
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    taken = set().union(*(colliding_names(pattern) for pattern in response.json()))
    # The listing reached the server's own, JupyterLab's and Code Pilot's routes.
    assert {"api", "files", "lab", "static", "terminals", "codepilot", "preview"} <= taken
    assert taken <= servernames.RESERVED_NAMES, taken - servernames.RESERVED_NAMES


# --- the README's configuration reference ---------------------------------------------------

README = REPO_ROOT / "README.md"


def _user_server_section() -> str:
    text = README.read_text()
    start = text.index("### The user server (`c.CodePilot.*`")
    return text[start : text.index("\n## ", start)]


def test_the_readme_lists_exactly_the_user_servers_variables():
    from server_extension.app import CodePilot

    rows = re.findall(r"^\| `(\w+)` \| `(CODEPILOT_\w+)` \|", _user_server_section(), re.M)
    traits = CodePilot.class_own_traits(config=True)
    assert dict(rows) == {name: env.env_name(name) for name in traits}
    assert len(rows) == len(traits)  # each once
    # The variables the server reads that are not traits are named there too.
    section = _user_server_section()
    for variable in (env.CREDENTIALS_EXPIRATION, env.STARTERS_DIR):
        assert f"`{variable}`" in section, variable


def test_the_readme_states_the_shared_defaults():
    from server_extension.app import CodePilot

    defaults_in_readme = dict(
        re.findall(r"^\| `(\w+)` \| `CODEPILOT_\w+` \| `([^`]*)` \|", _user_server_section(), re.M)
    )
    for name in ("s3_prefix", "s3_region", "preview_port"):
        assert defaults_in_readme[name] == str(CodePilot.class_traits()[name].default_value)
    assert defaults_in_readme["s3_prefix"] == defaults.S3_PREFIX
    assert defaults_in_readme["s3_region"] == defaults.S3_REGION
    assert defaults_in_readme["preview_port"] == str(defaults.PREVIEW_PORT)


# --- starters -------------------------------------------------------------------------------


def test_packaged_starters_are_the_starter_folders():
    assert starters.folder_starter_names(STARTERS_FOLDER) == sorted(starters.PACKAGED_STARTERS)
    assert set(starters.STARTER_TITLES) == set(starters.PACKAGED_STARTERS)
    assert all(starters.STARTER_NAME.match(name) for name in starters.PACKAGED_STARTERS)


def test_folder_starters_skip_symlinks_files_and_odd_names(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "bad name").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "good")
    assert starters.folder_starter_names(tmp_path) == ["good"]
    assert starters.folder_starter_names(tmp_path / "missing") == []
    assert starters.folder_starter_names(None) == []

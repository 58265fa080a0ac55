"""Which command the Run button starts, found in the project's files.

In order: ``codepilot.toml`` (``[run] command``, optional ``cwd`` and ``env``), a Replit
project's ``.replit`` (``run = ...``, else its ``entrypoint``; its ``[env]``), a
``Procfile``'s ``web:`` line, ``package.json`` scripts (``dev``, then ``start``), then a
Python entry point (``app.py`` importing Flask, ``main.py``). The first file that names a
command wins; a malformed ``codepilot.toml``, ``.replit`` or ``package.json`` stops the
search with a message naming the file, line and problem, since running the next candidate
would hide the student's mistake. An npm command in a Node project without
``node_modules`` installs its packages first. Env values may use ``$NAME``, expanded as
the run starts.

Everything here reads files and builds values; nothing starts a process.
"""

import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

CONFIG_FILE = "codepilot.toml"
REPLIT_FILE = ".replit"
PROCFILE = "Procfile"
PACKAGE_JSON = "package.json"

# The Flask run the students expect: the preview's port, loopback only, reloading.
FLASK_COMMAND = "flask --app app run --host 127.0.0.1 --port $PORT --debug"
FLASK_IMPORT = re.compile(r"^\s*(from\s+flask\s+import|import\s+flask\b)", re.MULTILINE)
# tomllib's messages end "(at line 3, column 9)".
TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)$")
# What a student types first in a fresh Node project, quiet about audits and funding.
NPM_INSTALL = "npm install --no-audit --no-fund"
NPM_COMMAND = re.compile(r"^\s*(npm|npx)\s")
# ``$NAME`` and ``${NAME}`` in an env value, as a shell reads them.
ENV_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
PATH_REFERENCE = re.compile(r"\$(\{PATH\}|PATH\b)")
# What runs a Replit entrypoint, by its suffix.
ENTRYPOINT_RUNNERS = {".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node", ".sh": "bash"}
# More than any run command needs; a bigger "source file" is not one to read whole.
MAX_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class RunCommand:
    """A command found: a shell command line, run in ``cwd`` (relative to the workspace)
    with ``env`` on top of a terminal's environment."""

    command: str
    source: str
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"command": self.command, "source": self.source, "cwd": self.cwd, "env": self.env}


@dataclass(frozen=True)
class CommandProblem:
    """A file that should name the command but cannot be read as such."""

    file: str
    line: int | None
    problem: str

    @property
    def message(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return f"{where}: {self.problem}"

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "problem": self.problem,
            "message": self.message,
        }


@dataclass(frozen=True)
class NoCommand:
    """Nothing names a command; ``guess`` is what the Run panel offers to write."""

    guess: str

    @property
    def message(self) -> str:
        return (
            f"Nothing says how to run this project. Add {CONFIG_FILE} with "
            f'[run] command = "...", for example "{self.guess}".'
        )

    def to_json(self) -> dict:
        return {"guess": self.guess, "message": self.message, "config": config_text(self.guess)}


def config_text(command: str) -> str:
    """A ``codepilot.toml`` that runs ``command``, as the "Use: ..." button writes it."""
    return f"[run]\ncommand = {json.dumps(command)}\n"


def _read_text(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_READ_BYTES)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return raw.decode("utf-8", errors="replace")


def _toml_problem(name: str, error: tomllib.TOMLDecodeError) -> CommandProblem:
    text = str(error)
    where = TOML_WHERE.search(text)
    line = int(where.group(1)) if where else None
    problem = TOML_WHERE.sub("", text) if where else text
    return CommandProblem(name, line, f"not valid TOML: {problem}")


def _line_of(text: str, pattern: str) -> int | None:
    """The first line of ``text`` that mentions ``pattern`` (for messages about a key)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern in line:
            return number
    return None


def _command_value(value, name: str, text: str, key: str) -> str | CommandProblem:
    """A command given as a string or a list of arguments (both are in ``.replit`` files)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        return shlex.join(value)
    return CommandProblem(
        name, _line_of(text, key), f"{key} must be a command line (a non-empty string)"
    )


def _relative_cwd(value, name: str, text: str) -> str | CommandProblem:
    if not isinstance(value, str):
        return CommandProblem(name, _line_of(text, "cwd"), "cwd must be a string")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        return CommandProblem(
            name, _line_of(text, "cwd"), "cwd must be a folder inside the project"
        )
    return "" if str(path) == "." else str(path)


def _string_env(value, name: str, text: str) -> dict[str, str] | CommandProblem:
    if not isinstance(value, dict):
        return CommandProblem(name, _line_of(text, "env"), "env must be a table")
    env = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            return CommandProblem(
                name, _line_of(text, key), f"env.{key} must be a string or a number"
            )
        env[key] = str(item)
    return env


def from_config(root: Path) -> RunCommand | CommandProblem | None:
    """``codepilot.toml``: ``[run]`` with ``command`` and optional ``cwd`` and ``env``."""
    text = _read_text(root / CONFIG_FILE)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return _toml_problem(CONFIG_FILE, error)
    run = data.get("run")
    if run is None:
        return None  # a codepilot.toml for other settings: look further
    if not isinstance(run, dict):
        return CommandProblem(CONFIG_FILE, _line_of(text, "run"), "run must be a [run] table")
    if "command" not in run:
        return CommandProblem(CONFIG_FILE, _line_of(text, "[run]"), '[run] has no command = "..."')
    command = _command_value(run["command"], CONFIG_FILE, text, "command")
    cwd = _relative_cwd(run.get("cwd", ""), CONFIG_FILE, text)
    env = _string_env(run.get("env", {}), CONFIG_FILE, text)
    for part in (command, cwd, env):
        if isinstance(part, CommandProblem):
            return part
    return RunCommand(command, CONFIG_FILE, cwd, env)


def _entrypoint_command(value, text: str) -> str | CommandProblem:
    """Replit's Run with no ``run``: the ``entrypoint`` file, by the runner its suffix
    names."""
    line = _line_of(text, "entrypoint")
    path = PurePosixPath(value) if isinstance(value, str) and value.strip() else None
    if path is None or path.is_absolute() or ".." in path.parts:
        return CommandProblem(REPLIT_FILE, line, "entrypoint must be a file inside the project")
    runner = ENTRYPOINT_RUNNERS.get(path.suffix)
    if runner is None:
        known = ", ".join(ENTRYPOINT_RUNNERS)
        return CommandProblem(
            REPLIT_FILE,
            line,
            f"entrypoint {str(path)!r}: no runner known for its suffix (known: {known});"
            ' add run = "..."',
        )
    return f"{runner} {shlex.quote(str(path))}"


def _replit_env(value, root: Path, text: str) -> dict[str, str] | CommandProblem:
    """``[env]``, with ``REPL_HOME`` (the project's folder, as Replit sets it) for its
    values to refer to. A ``PATH`` that does not mention ``$PATH`` goes before the
    inherited one: Replit's templates write ``PATH = "${VIRTUAL_ENV}/bin"``."""
    env = _string_env(value, REPLIT_FILE, text)
    if isinstance(env, CommandProblem):
        return env
    path = env.get("PATH")
    if path is not None and not PATH_REFERENCE.search(path):
        env["PATH"] = f"{path}:${{PATH}}"
    return {"REPL_HOME": str(root), **env}


def from_replit(root: Path) -> RunCommand | CommandProblem | None:
    """A Replit project's ``.replit``: a top-level ``run`` (a string or a list of
    arguments), else its ``entrypoint`` file; ``[env]`` on top."""
    text = _read_text(root / REPLIT_FILE)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return _toml_problem(REPLIT_FILE, error)
    if "run" in data:
        command = _command_value(data["run"], REPLIT_FILE, text, "run")
    elif "entrypoint" in data:
        command = _entrypoint_command(data["entrypoint"], text)
    else:
        return None
    env = _replit_env(data.get("env", {}), root, text)
    for part in (command, env):
        if isinstance(part, CommandProblem):
            return part
    return RunCommand(command, REPLIT_FILE, env=env)


def expanded_env(env: Mapping[str, str], inherited: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``$NAME`` and ``${NAME}`` replaced by what an earlier entry set, else
    by what the run inherits (empty when neither has it), as a shell would export them."""
    resolved: dict[str, str] = {}

    def value_of(reference: re.Match) -> str:
        name = reference.group(1) or reference.group(2)
        return resolved.get(name, inherited.get(name, ""))

    for key, value in env.items():
        resolved[key] = ENV_REFERENCE.sub(value_of, value)
    return resolved


def from_procfile(root: Path) -> RunCommand | None:
    """A ``Procfile``'s ``web:`` process."""
    text = _read_text(root / PROCFILE)
    if text is None:
        return None
    for line in text.splitlines():
        kind, colon, command = line.partition(":")
        if colon and kind.strip() == "web" and command.strip():
            return RunCommand(command.strip(), PROCFILE)
    return None


def from_package_json(root: Path) -> RunCommand | CommandProblem | None:
    """``package.json``'s ``dev`` script, else its ``start`` script."""
    text = _read_text(root / PACKAGE_JSON)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return CommandProblem(PACKAGE_JSON, error.lineno, f"not valid JSON: {error.msg}")
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if not isinstance(scripts, dict):
        return None
    if isinstance(scripts.get("dev"), str):
        return RunCommand("npm run dev", PACKAGE_JSON)
    if isinstance(scripts.get("start"), str):
        return RunCommand("npm start", PACKAGE_JSON)
    return None


def from_python_entry(root: Path) -> RunCommand | None:
    """``app.py`` importing Flask (run by flask, on ``$PORT``), else ``main.py``."""
    app = _read_text(root / "app.py")
    if app is not None and FLASK_IMPORT.search(app):
        return RunCommand(FLASK_COMMAND, "app.py")
    if (root / "main.py").is_file():
        return RunCommand("python main.py", "main.py")
    return None


FINDERS = (from_config, from_replit, from_procfile, from_package_json, from_python_entry)


def guess_command(root: Path) -> str:
    """A command for a project that names none, from the files it has."""
    try:
        names = sorted(entry.name for entry in root.iterdir() if entry.is_file())
    except OSError:
        names = []
    for name in ("app.py", "server.py", "index.js", "server.js"):
        if name in names:
            return f"node {name}" if name.endswith(".js") else f"python {name}"
    python = [name for name in names if name.endswith(".py")]
    if python:
        return f"python {shlex.quote(python[0])}"
    if "index.html" in names:
        return "python -m http.server $PORT --bind 127.0.0.1"
    return "python main.py"


def with_packages_installed(found: RunCommand, root: Path) -> RunCommand:
    """An npm command in a folder with a package.json and no node_modules installs the
    packages first (a starter's first Run, a project just imported); with node_modules
    there, the command as written, so Run is as fast as typing it."""
    folder = root / found.cwd
    if not NPM_COMMAND.match(found.command) or not (folder / PACKAGE_JSON).is_file():
        return found
    if (folder / "node_modules").is_dir():
        return found
    return replace(found, command=f"{NPM_INSTALL} && {found.command}")


def find_run_command(root: Path) -> RunCommand | CommandProblem | NoCommand:
    """The project's run command, the problem with the file that should name it, or a
    guess when nothing does."""
    root = Path(root)
    for finder in FINDERS:
        found = finder(root)
        if isinstance(found, RunCommand):
            return with_packages_installed(found, root)
        if found is not None:
            return found
    return NoCommand(guess_command(root))

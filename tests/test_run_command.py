"""Which command the Run button starts: each source in the issue's order, the messages
for malformed files, the guess when nothing names one, and every starter's own."""

import json

import pytest

from server_extension.run.command import (
    FLASK_COMMAND,
    NPM_INSTALL,
    CommandProblem,
    NoCommand,
    RunCommand,
    config_text,
    expanded_env,
    find_run_command,
)
from server_extension.starters import STARTERS_DIR, starter_names


def project(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


EVERY_SOURCE = {
    "codepilot.toml": '[run]\ncommand = "python serve.py"\n',
    ".replit": 'run = "node replit.js"\n',
    "Procfile": "worker: python worker.py\nweb: gunicorn app:app\n",
    "package.json": json.dumps({"scripts": {"start": "node index.js", "dev": "vite"}}),
    "app.py": "from flask import Flask\napp = Flask(__name__)\n",
    "main.py": "print('hi')\n",
    "node_modules/.package-lock.json": "{}",  # packages installed: npm runs as written
}
# (file taken away, command then found, its source)
ORDER = [
    (None, "python serve.py", "codepilot.toml"),
    ("codepilot.toml", "node replit.js", ".replit"),
    (".replit", "gunicorn app:app", "Procfile"),
    ("Procfile", "npm run dev", "package.json"),
    ("package.json", FLASK_COMMAND, "app.py"),
    ("app.py", "python main.py", "main.py"),
]


def test_sources_are_taken_in_the_issues_order(tmp_path):
    project(tmp_path, EVERY_SOURCE)
    for removed, command, source in ORDER:
        if removed:
            (tmp_path / removed).unlink()
        found = find_run_command(tmp_path)
        assert isinstance(found, RunCommand), found
        assert (found.command, found.source) == (command, source)


def test_config_cwd_and_env(tmp_path):
    project(
        tmp_path,
        {
            "codepilot.toml": '[run]\ncommand = "npm run dev"\ncwd = "web/"\n'
            '[run.env]\nNODE_ENV = "development"\nWORKERS = 2\n'
        },
    )
    found = find_run_command(tmp_path)
    assert found == RunCommand(
        "npm run dev", "codepilot.toml", "web", {"NODE_ENV": "development", "WORKERS": "2"}
    )


def test_replit_run_as_a_list_is_one_command_line(tmp_path):
    project(tmp_path, {".replit": 'run = ["python3", "my app.py"]\nentrypoint = "x"\n'})
    assert find_run_command(tmp_path).command == "python3 'my app.py'"


@pytest.mark.parametrize(
    ("replit", "command"),
    [
        ('run = "python3 main.py"\nentrypoint = "main.py"\n', "python3 main.py"),
        ('run = ["node", "index.js"]\n', "node index.js"),
        # Replit's Run with no run: the entrypoint, run by what its suffix says.
        ('entrypoint = "bot.py"\nmodules = ["python-3.11"]\n', "python bot.py"),
        ('entrypoint = "src/my server.mjs"\n', "node 'src/my server.mjs'"),
        ('entrypoint = "start.sh"\n[deployment]\nrun = ["sh", "x"]\n', "bash start.sh"),
    ],
)
def test_a_replit_project_runs_its_run_else_its_entrypoint(tmp_path, replit, command):
    project(tmp_path, {".replit": replit, "main.py": "", "package.json": "{}"})
    assert find_run_command(tmp_path) == RunCommand(
        command, ".replit", env={"REPL_HOME": str(tmp_path)}
    )


def test_a_replit_without_run_or_entrypoint_is_passed_over(tmp_path):
    project(tmp_path, {".replit": 'language = "python3"\n[env]\nA = "1"\n', "main.py": ""})
    assert find_run_command(tmp_path).source == "main.py"


def test_replit_env_refers_to_repl_home_and_puts_its_path_first(tmp_path):
    replit = (
        'run = "python3 main.py"\n[env]\nVIRTUAL_ENV = "${REPL_HOME}/venv"\n'
        'PATH = "${VIRTUAL_ENV}/bin"\nPORT_TOO = "$PORT"\nLEVEL = 2\n'
    )
    project(tmp_path, {".replit": replit})
    env = find_run_command(tmp_path).env
    assert env["PATH"] == "${VIRTUAL_ENV}/bin:${PATH}"
    inherited = {"PATH": "/usr/bin:/bin", "PORT": "8080", "REPL_HOME": "/elsewhere"}
    assert expanded_env(env, inherited) == {
        "REPL_HOME": str(tmp_path),
        "VIRTUAL_ENV": f"{tmp_path}/venv",
        "PATH": f"{tmp_path}/venv/bin:/usr/bin:/bin",
        "PORT_TOO": "8080",
        "LEVEL": "2",
    }


def test_env_values_expand_earlier_entries_then_the_inherited_ones(tmp_path):
    env = {"A": "a", "B": "${A}-$A-$HOME-${NOWHERE}-$", "PATH": "/mine:$PATH"}
    assert expanded_env(env, {"HOME": "/home/x", "PATH": "/bin", "A": "inherited"}) == {
        "A": "a",
        "B": "a-a-/home/x--$",
        "PATH": "/mine:/bin",
    }


def test_package_json_start_when_there_is_no_dev(tmp_path):
    scripts = {"package.json": json.dumps({"scripts": {"start": "node ."}})}
    project(tmp_path, {**scripts, "node_modules/.package-lock.json": "{}"})
    assert find_run_command(tmp_path).command == "npm start"


@pytest.mark.parametrize(
    ("files", "command", "expected"),
    [
        # No node_modules: Run installs the packages first, in the command's folder.
        ({"package.json": "{}"}, "npm run dev", f"{NPM_INSTALL} && npm run dev"),
        ({"package.json": "{}"}, "npx vite", f"{NPM_INSTALL} && npx vite"),
        # Installed: the command as written, as fast as typing it.
        ({"package.json": "{}", "node_modules/x/index.js": ""}, "npm run dev", "npm run dev"),
        # Not a Node project, or not an npm command: nothing added.
        ({}, "npm run dev", "npm run dev"),
        ({"package.json": "{}"}, "python main.py", "python main.py"),
    ],
)
def test_npm_commands_install_missing_packages_first(tmp_path, files, command, expected):
    config = f'[run]\ncommand = "{command}"\ncwd = "web"\n'
    project(tmp_path, {"codepilot.toml": config, **{f"web/{n}": t for n, t in files.items()}})
    (tmp_path / "web").mkdir(exist_ok=True)
    found = find_run_command(tmp_path)
    assert (found.command, found.cwd) == (expected, "web")


def test_package_json_scripts_install_missing_packages_first(tmp_path):
    project(tmp_path, {"package.json": json.dumps({"scripts": {"dev": "vite"}})})
    assert find_run_command(tmp_path).command == f"{NPM_INSTALL} && npm run dev"


def test_app_py_without_flask_falls_to_main_py(tmp_path):
    project(tmp_path, {"app.py": "print(1)\n", "main.py": "print(2)\n"})
    assert find_run_command(tmp_path).command == "python main.py"


def test_a_codepilot_toml_without_run_is_passed_over(tmp_path):
    project(tmp_path, {"codepilot.toml": "[editor]\ntabs = 2\n", "main.py": ""})
    assert find_run_command(tmp_path).source == "main.py"


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("codepilot.toml", '[run]\ncommand = "npm run dev\n', 2, "not valid TOML"),
        ("codepilot.toml", "[run]\ncwd = 'x'\n", 1, "no command"),
        ("codepilot.toml", "[run]\ncommand = 3\n", 2, "command must be"),
        ("codepilot.toml", "[run]\ncommand = ''\n", 2, "command must be"),
        ("codepilot.toml", '[run]\ncommand = "x"\ncwd = "../up"\n', 3, "inside the project"),
        ("codepilot.toml", '[run]\ncommand = "x"\n\n[run.env]\nA = [1]\n', 5, "env.A"),
        ("codepilot.toml", 'run = "x"\n', 1, "[run] table"),
        (".replit", "run = \nlanguage = 'python'\n", 1, "not valid TOML"),
        (".replit", "run = []\n", 1, "run must be"),
        (".replit", 'entrypoint = "notes.txt"\n', 1, "no runner known"),
        (".replit", 'language = "go"\nentrypoint = "../up.py"\n', 2, "inside the project"),
        (".replit", 'run = "x"\n\n[env]\nA = [1]\n', 4, "env.A"),
        ("package.json", '{\n  "scripts": {\n    "dev": "vite",\n  }\n}\n', 4, "not valid JSON"),
    ],
)
def test_a_malformed_file_names_itself_its_line_and_the_problem(tmp_path, name, text, line, words):
    project(tmp_path, {name: text, "main.py": "print(1)\n"})
    found = find_run_command(tmp_path)
    assert isinstance(found, CommandProblem), found
    assert (found.file, found.line) == (name, line)
    assert words in found.problem
    assert found.message.startswith(f"{name}, line {line}: ")


@pytest.mark.parametrize(
    ("files", "guess"),
    [
        ({}, "python main.py"),
        ({"server.js": ""}, "node server.js"),
        ({"game.py": "", "util.py": ""}, "python game.py"),
        ({"index.html": ""}, "python -m http.server $PORT --bind 127.0.0.1"),
    ],
)
def test_nothing_found_offers_a_guess_to_write(tmp_path, files, guess):
    project(tmp_path, files)
    found = find_run_command(tmp_path)
    assert found == NoCommand(guess)
    assert "codepilot.toml" in found.message
    # What the "Use: ..." button writes is found as that command afterwards.
    (tmp_path / "codepilot.toml").write_text(found.to_json()["config"])
    assert find_run_command(tmp_path) == RunCommand(guess, "codepilot.toml")


def test_config_text_quotes_what_toml_needs(tmp_path):
    command = "echo \"a \\ b\" && python -c 'print(1)'"
    (tmp_path / "codepilot.toml").write_text(config_text(command))
    assert find_run_command(tmp_path).command == command


EXPECTED_STARTER_COMMANDS = {
    "python": "python main.py",
    "flask": "python app.py",
    # A starter has no node_modules until its first Run installs them.
    "node-express": f"{NPM_INSTALL} && npm run dev",
    "react-vite": f"{NPM_INSTALL} && npm run dev",
}


@pytest.mark.parametrize("name", starter_names())
def test_every_starter_ships_its_codepilot_toml(name):
    found = find_run_command(STARTERS_DIR / name)
    assert isinstance(found, RunCommand), found
    assert found.source == "codepilot.toml"
    assert found.command == EXPECTED_STARTER_COMMANDS[name]

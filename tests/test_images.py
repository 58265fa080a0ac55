"""The hub and runner images: hadolint, pinned bases, uid 1000, and their install steps.

There is no container engine here, so the install steps are exercised the way the
Dockerfiles run them: the project's wheel is built with the same command, then installed
with the same requirement line (wheel plus extra) into a fresh venv per image, on Python
3.12 when this machine has it (the images' Python). The hub venv then loads
hub_config/jupyterhub_config.py with values rendered by the Helm chart.
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .support.helm import CHART, NAMESPACE, RELEASE, helm_binary, render
from .support.paths import REPO_ROOT
from .support.value_sets import VALUE_SETS

# Building the two image venvs from the wheel downloads and installs every dependency (over
# 300 s on a loaded machine): the install steps are what these tests exercise.
pytestmark = pytest.mark.timeout(900)

IMAGES = REPO_ROOT / "images"
DOCKERFILES = {name: IMAGES / name / "Dockerfile" for name in ("hub", "runner")}
HADOLINT = Path(sys.executable).parent / "hadolint"


def dockerfile_text(image: str) -> str:
    # Join continuation lines so each instruction is one line.
    return re.sub(r"\\\n", " ", DOCKERFILES[image].read_text())


def instructions(image: str) -> list[tuple[str, str]]:
    found = []
    for line in dockerfile_text(image).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


# --- lint and static checks --------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_passes(image):
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.integration
def test_hadolint_is_not_vacuous(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install git\n")
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def base_images(image: str) -> list[str]:
    """What each FROM resolves to, with ARG defaults filled in; stage names excluded."""
    args, stages, bases = {}, set(), []
    for keyword, rest in instructions(image):
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            reference = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            if reference not in stages:
                bases.append(reference)
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return bases


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_bases_are_pinned(image):
    bases = base_images(image)
    assert bases
    for base in bases:
        name, _, tag = base.partition("@")[0].rpartition(":")
        # An exact release (x.y.z...) or a digest: never a moving tag like 3.12 or latest.
        exact = re.fullmatch(r"\d+\.\d+\.\d+[-\w.]*", tag) or "@sha256:" in base
        assert name and exact, base
    assert any(base.startswith("python:3.12.") for base in bases)


def test_runner_has_node_lts():
    (node,) = [b for b in base_images("runner") if b.startswith("node:")]
    major = int(node.split(":")[1].split(".")[0])
    assert major % 2 == 0, "Node.js LTS releases have even major versions"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_images_run_as_uid_1000(image):
    users = [rest for keyword, rest in instructions(image) if keyword == "USER"]
    assert users and users[-1] == "1000"
    assert "--uid 1000" in dockerfile_text(image)


def test_dockerignore_lets_in_only_what_the_images_copy():
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for image in DOCKERFILES:
        for keyword, rest in instructions(image):
            if keyword == "COPY" and not rest.startswith("--from"):
                copied.update(src.rstrip("/") for src in shlex.split(rest)[:-1])
    assert copied <= included, copied - included
    assert included <= copied, included - copied
    for path in copied:
        assert (REPO_ROOT / path).exists(), path
    assert (REPO_ROOT / "hub_config" / "jupyterhub_config.py").exists()


def wheel_command(image: str) -> list[str]:
    """The Dockerfile's `pip wheel ...` command."""
    match = re.search(r"RUN (python -m pip wheel [^&]+?)\s+&&", dockerfile_text(image))
    assert match, "the wheel stage builds with pip wheel"
    return shlex.split(match.group(1))


def requirement_line(image: str, wheel: Path) -> str:
    """The Dockerfile's requirement line, pointed at a wheel built here."""
    match = re.search(
        r'echo "(codepilot\[(\w+)\] @ file://)/tmp/dist/\$\{wheel##\*/\}"', dockerfile_text(image)
    )
    assert match, "the wheel stage writes a requirement line with the extra"
    assert match.group(2) == image  # the hub image installs [hub], the runner [runner]
    return f"{match.group(1)}{wheel}"


def test_both_images_build_the_wheel_the_same_way():
    assert wheel_command("hub") == wheel_command("runner")
    assert wheel_command("hub")[:5] == ["python", "-m", "pip", "wheel", "--no-cache-dir"]


# --- the install steps, for real ---------------------------------------------------------


def image_python() -> str:
    """Python 3.12 (the images' base) when this machine has one, else the running Python."""
    candidates = [shutil.which("python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.startswith("Python 3.12"):
            return candidate
    return sys.executable


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    command = wheel_command("hub")
    command[0] = sys.executable
    command[command.index("-w") + 1] = str(dist)
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("codepilot-*.whl")
    return built


@pytest.fixture(scope="module")
def venvs(tmp_path_factory, wheel) -> dict[str, Path]:
    """One fresh venv per image with the wheel and the image's extra, installed in parallel."""
    root = tmp_path_factory.mktemp("image-venvs")
    python = image_python()
    running = {}
    for image in DOCKERFILES:
        venv = root / image
        requirements = root / f"{image}-requirements.txt"
        requirements.write_text(requirement_line(image, wheel) + "\n")
        log = (root / f"{image}.log").open("w")
        script = (
            f"{shlex.quote(python)} -m venv {shlex.quote(str(venv))} && "
            f"{shlex.quote(str(venv / 'bin' / 'python'))} -m pip install --quiet "
            f"--requirement {shlex.quote(str(requirements))}"
        )
        running[image] = (
            venv,
            log,
            subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT),
        )
    for image, (_venv, log, process) in running.items():
        returncode = process.wait(timeout=900)
        log.close()
        assert returncode == 0, (root / f"{image}.log").read_text()[-4000:]
    return {image: venv for image, (venv, _, _) in running.items()}


def run_in(venv: Path, *command: str, env: dict | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.integration
def test_runner_install_has_jupyterlab_and_the_extension(venvs):
    venv = venvs["runner"]
    extensions = run_in(venv, "jupyter", "server", "extension", "list")
    assert re.search(r"^\s+server_extension \S*enabled", extensions, re.M), extensions
    assert re.search(r"^\s+server_extension \s*\S*OK", extensions, re.M), extensions
    # No proxy inside the IDE: previews are served on origins of their own by the gateway.
    assert not re.search(r"^\s+jupyter_server_proxy \S*enabled", extensions, re.M), extensions
    assert re.search(r"^\s+jupyterlab \S*enabled", extensions, re.M)
    assert (venv / "etc/jupyter/jupyter_server_config.d/server_extension.json").exists()
    run_in(venv, "jupyterhub-singleuser", "--version")
    run_in(venv, "codepilot-singleuser", "--version")
    run_in(venv, "jupyter-lab", "--version")
    labextensions = run_in(venv, "jupyter", "labextension", "list")
    assert re.search(r"@codepilot/lab \S+ \S*enabled\S* \S*OK", labextensions), labextensions
    # The code comes from the wheel, not from this checkout.
    where = run_in(
        venv, "python", "-c", "import server_extension; print(server_extension.__file__)", cwd=venv
    )
    assert str(venv) in where


@pytest.mark.integration
def test_runner_install_has_the_language_servers(venvs):
    """Code intelligence: jupyter-lsp and jupyterlab-lsp enabled, pylsp with ruff, and the
    wheel's package.json from which the Dockerfile's `npm ci` installs
    typescript-language-server where the server looks for it."""
    venv = venvs["runner"]
    extensions = run_in(venv, "jupyter", "server", "extension", "list")
    assert re.search(r"^\s+jupyter_lsp \S*enabled", extensions, re.M), extensions
    labextensions = run_in(venv, "jupyter", "labextension", "list")
    assert re.search(r"@jupyter-lsp/jupyterlab-lsp \S+ \S*enabled\S* \S*OK", labextensions)
    assert "pylsp_ruff" in run_in(
        venv, "python", "-c", "import pylsp_ruff; print(pylsp_ruff.__name__)"
    )
    run_in(venv, "pylsp", "--version")
    node_root = Path(
        run_in(
            venv, "python", "-P", "-c", "import server_extension.codeintel as c; print(c.NODE_ROOT)"
        )
        .strip()
        .splitlines()[-1]
    )
    assert str(venv) in str(node_root)
    assert (node_root / "package-lock.json").exists() and not (node_root / "node_modules").exists()
    assert 'npm ci --prefix "$codeintel"' in dockerfile_text(
        "runner"
    ) and "print(c.NODE_ROOT)" in dockerfile_text("runner")
    subprocess.run(
        ["npm", "ci", "--prefix", str(node_root), "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    version = subprocess.run(
        [
            "node",
            str(node_root / "node_modules/typescript-language-server/lib/cli.mjs"),
            "--version",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip().startswith("5.")


@pytest.mark.integration
def test_hub_install_has_jupyterhub_kubespawner_and_the_culler(venvs):
    venv = venvs["hub"]
    run_in(venv, "jupyterhub", "--version")
    run_in(venv, "python", "-m", "jupyterhub_idle_culler", "--help")
    # User pods run their preview relay from the hub image (the chart's relayImage).
    run_in(venv, "python", "-m", "codepilot_spawner.kubernetes.relay", "--help", cwd=venv)
    check = (
        "import kubespawner, codepilot_spawner; "
        "assert issubclass(codepilot_spawner.CodePilotSpawner, kubespawner.KubeSpawner); "
        "print(codepilot_spawner.__file__)"
    )
    assert str(venv) in run_in(venv, "python", "-c", check, cwd=venv)


@pytest.mark.integration
def test_hub_install_has_a_postgresql_driver(venvs):
    """hub.db.url: postgresql://... needs a driver in the hub extra (psycopg 3)."""
    venv = venvs["hub"]
    code = (
        "import psycopg, sqlalchemy; "
        "from codepilot_spawner.kubernetes.values import database_url; "
        "url = database_url('postgresql://hub:pw@db.example.com/hub'); "
        "print(sqlalchemy.create_engine(url).dialect.driver)"
    )
    assert run_in(venv, "python", "-c", code, cwd=venv).strip() == "psycopg"
    assert "psycopg" in dockerfile_text("hub").split("jupyterhub_idle_culler", 1)[1].split("\n")[0]


# The hub image copies hub_config/ here; the chart runs `jupyterhub --config=<this>`.
LOAD_HUB_CONFIG = """
import json, sys
from jupyterhub.app import JupyterHub
app = JupyterHub()
app.load_config_file(sys.argv[1])
c = app.config
print(json.dumps({
    "spawner_class": str(c.JupyterHub.spawner_class),
    "base_url": c.JupyterHub.base_url,
    "subdomain_host": c.JupyterHub.subdomain_host,
    "hub_connect_url": c.JupyterHub.hub_connect_url,
    "proxy_api_url": c.ConfigurableHTTPProxy.api_url,
    "should_start": c.ConfigurableHTTPProxy.should_start,
    "db_url": c.JupyterHub.db_url,
    "release": c.CodePilotSpawner.release,
    "namespace": c.CodePilotSpawner.namespace,
    "image": c.CodePilotSpawner.image,
    "services": [s["name"] for s in c.JupyterHub.services],
}))
"""


def hub_environment(objects, values_file: Path) -> dict:
    """The hub container's environment as Kubernetes would give it (secrets made up)."""
    deployment = next(
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{RELEASE}-hub"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": os.environ["PATH"], "HOME": str(values_file.parent)}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:
            field = entry["valueFrom"]["fieldRef"]["fieldPath"]
            env[entry["name"]] = {"metadata.namespace": NAMESPACE, "status.podIP": "10.1.2.3"}[
                field
            ]
        else:
            env[entry["name"]] = f"secret-{entry['name'].lower()}"
    env["CODEPILOT_VALUES_FILE"] = str(values_file)
    return env


@pytest.mark.integration
@pytest.mark.parametrize("value_set", ["default", "subdomain", "sts"])
def test_hub_config_reads_the_chart_values(venvs, tmp_path, value_set):
    import base64

    objects = render(helm_binary(), VALUE_SETS[value_set], tmp_path)
    config_secret = next(
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == f"{RELEASE}-hub-config"
    )
    data = config_secret.get("stringData") or {
        k: base64.b64decode(v).decode() for k, v in config_secret["data"].items()
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(data["values.yaml"])
    copied = tmp_path / "share"
    shutil.copytree(REPO_ROOT / "hub_config", copied)  # as the Dockerfile's COPY does
    output = run_in(
        venvs["hub"],
        "python",
        "-c",
        LOAD_HUB_CONFIG,
        str(copied / "jupyterhub_config.py"),
        env=hub_environment(objects, values_file),
        cwd=tmp_path,
    )
    loaded = json.loads(output.strip().splitlines()[-1])
    values = yaml.safe_load(data["values.yaml"])
    assert loaded["spawner_class"].endswith("CodePilotSpawner")
    assert loaded["base_url"] == values["hub"]["baseUrl"]
    assert loaded["subdomain_host"] == values["hub"]["subdomainHost"]
    assert loaded["hub_connect_url"] == f"http://{RELEASE}-hub:8081"
    assert loaded["proxy_api_url"] == f"http://{RELEASE}-proxy-api:8001"
    assert loaded["should_start"] is False
    assert loaded["release"] == RELEASE
    assert loaded["namespace"] == NAMESPACE
    assert (
        loaded["image"]
        == f"{values['singleuser']['image']['name']}:{values['singleuser']['image']['tag']}"
    )
    assert "idle-culler" in loaded["services"]
    if value_set == "sts":
        # The credentials broker listens on the port the chart's Service and policies open.
        assert len(loaded["services"]) == 2
    assert yaml.safe_load((CHART / "values.yaml").read_text())["culler"]["enabled"] is True

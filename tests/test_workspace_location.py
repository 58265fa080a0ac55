"""One value for the user server's S3 settings, ``WorkspaceLocation``: built from the
extension's ``c.CodePilot`` traits and from the sync command's options and variables,
and handed whole to the contents managers and the S3 client."""

import logging

import pytest
from traitlets.config import Config

from codepilot_contracts.env import env_name
from server_extension.app import CodePilot
from server_extension.storage import wiring
from server_extension.storage.contents import SyncContentsManager
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Store
from server_extension.storage.s3mode import s3contents_config
from server_extension.sync.cli import parser
from server_extension.sync.settings import SettingsError, location_from_options

# What the server's environment may hold that these tests set themselves.
VARIABLES = [
    *(
        env_name(name)
        for name in (
            "storage",
            "s3_bucket",
            "s3_prefix",
            "s3_endpoint_url",
            "s3_region",
            "credentials_url",
            "workspace_user",
            "workspace_server",
        )
    ),
    "JUPYTERHUB_USER",
    "JUPYTERHUB_SERVER_NAME",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
]


@pytest.fixture
def environ(monkeypatch):
    """The process environment without any S3 setting; tests set what they need."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def extension(**settings) -> CodePilot:
    config = Config()
    for name, value in settings.items():
        setattr(config.CodePilot, name, value)
    return CodePilot(config=config)


def options(*argv: str, command: str = "push"):
    return parser().parse_args([command, *argv])


# --- from the extension's traits --------------------------------------------------------


def test_the_extension_builds_the_location_from_its_traits(environ):
    app = extension(
        s3_bucket="work",
        s3_prefix="cp",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-west-1",
        credentials_url="http://hub/credentials",
        workspace_user="alice",
        workspace_server="web",
    )
    assert app.workspace_location == WorkspaceLocation(
        bucket="work",
        prefix="cp",
        key_prefix="cp/users/alice/web/",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        credentials_url="http://hub/credentials",
    )


def test_the_extension_reads_the_hubs_variables(environ):
    environ.setenv(env_name("s3_bucket"), "work")
    environ.setenv("JUPYTERHUB_USER", "bob")
    location = extension().workspace_location
    assert (location.bucket, location.prefix, location.region) == ("work", "codepilot", "us-east-1")
    assert location.key_prefix == "codepilot/users/bob/default/"


def test_local_storage_has_no_location(environ):
    assert extension().workspace_location is None
    assert extension(s3_bucket="work", storage="local").workspace_location is None


def test_s3_storage_without_a_bucket_names_the_variable(environ):
    with pytest.raises(ValueError, match="CODEPILOT_S3_BUCKET"):
        extension(storage="sync").workspace_location  # noqa: B018 (the property raises)


# --- from the sync command's options and variables ------------------------------------------


def test_the_command_builds_the_location_from_the_variables(environ):
    environ.setenv(env_name("s3_bucket"), "work")
    environ.setenv(env_name("s3_endpoint_url"), "http://127.0.0.1:9000")
    environ.setenv(env_name("credentials_url"), "http://hub/credentials")
    environ.setenv("JUPYTERHUB_USER", "carol")
    environ.setenv("JUPYTERHUB_SERVER_NAME", "api")
    assert location_from_options(options()) == WorkspaceLocation(
        bucket="work",
        prefix="codepilot",
        key_prefix="codepilot/users/carol/api/",
        endpoint_url="http://127.0.0.1:9000",
        region="us-east-1",
        credentials_url="http://hub/credentials",
    )


def test_options_win_over_variables_and_an_empty_variable_stays_empty(environ):
    environ.setenv(env_name("s3_bucket"), "work")
    environ.setenv(env_name("s3_prefix"), "")
    environ.setenv(env_name("s3_region"), "")
    environ.setenv(env_name("workspace_user"), "dave")
    environ.setenv("JUPYTERHUB_USER", "not-dave")
    location = location_from_options(options("--s3-bucket", "other", "--workspace-server", "x"))
    assert (location.bucket, location.prefix, location.region) == ("other", "", "")
    assert location.key_prefix == "users/dave/x/"


def test_the_command_without_a_bucket_names_the_variable_and_the_option(environ):
    environ.setenv("JUPYTERHUB_USER", "erin")
    with pytest.raises(SettingsError, match="CODEPILOT_S3_BUCKET or --s3-bucket"):
        location_from_options(options())


def test_the_command_without_a_user_names_where_one_comes_from(environ):
    environ.setenv(env_name("s3_bucket"), "work")
    with pytest.raises(SettingsError, match="CODEPILOT_WORKSPACE_USER, JUPYTERHUB_USER or"):
        location_from_options(options())
    # Uploading starters needs no workspace.
    starters = location_from_options(options(command="seed-starters"), workspace=False)
    assert (starters.key_prefix, starters.starter_prefix("flask")) == (
        "",
        "codepilot/templates/flask/",
    )


def test_the_server_and_its_restore_command_find_the_same_workspace(environ):
    # The spawner sets one environment for both: they must agree on every field.
    for name, value in {
        "s3_bucket": "work",
        "s3_prefix": "deploy",
        "s3_endpoint_url": "http://127.0.0.1:9000",
        "s3_region": "",
        "credentials_url": "http://hub/credentials",
    }.items():
        environ.setenv(env_name(name), value)
    environ.setenv("JUPYTERHUB_USER", "frank")
    environ.setenv("JUPYTERHUB_SERVER_NAME", "")
    assert extension().workspace_location == location_from_options(options(command="restore"))


# --- handed whole ---------------------------------------------------------------------------

LOCATION = WorkspaceLocation(
    "work", "cp", "cp/users/a/default/", "http://127.0.0.1:9", "eu-west-1", "http://hub/c"
)


def test_the_sync_manager_gets_the_location_whole(tmp_path):
    class_name, section, settings = wiring.contents_manager_choice("sync", LOCATION, 7.0)
    assert class_name.endswith("SyncContentsManager") and section == "SyncContentsManager"
    assert settings == {"workspace_location": LOCATION, "sync_save_timeout": 7.0}
    config = Config({section: settings})
    manager = SyncContentsManager(root_dir=str(tmp_path), config=config)
    # Config hands the manager a copy: the same value, all fields at once.
    assert manager.location == LOCATION
    store = manager.workspace_sync.store
    assert store.location == LOCATION and store.bucket == "work"
    assert manager.workspace_sync.key_prefix == "cp/users/a/default/"


def test_s3_storage_opens_the_same_workspace():
    class_name, section, settings = wiring.contents_manager_choice("s3", LOCATION)
    assert (class_name, section) == ("s3contents.S3ContentsManager", "S3ContentsManager")
    assert settings == s3contents_config(LOCATION)
    assert settings == {
        "bucket": "work",
        "prefix": "cp/users/a/default",
        "endpoint_url": "http://127.0.0.1:9",
        "region_name": "eu-west-1",
    }
    assert wiring.contents_manager_choice("local", None)[1] == ""


def test_a_sync_manager_without_the_extension_builds_one_from_its_traits(tmp_path):
    manager = SyncContentsManager(
        root_dir=str(tmp_path),
        s3_bucket="work",
        s3_key_prefix="tests/one/",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_credentials_url="http://hub/c",
    )
    location = manager.location
    assert (location.bucket, location.key_prefix) == ("work", "tests/one/")
    assert (location.endpoint_url, location.credentials_url) == (
        "http://127.0.0.1:9",
        "http://hub/c",
    )
    with pytest.raises(ValueError, match="s3_bucket and s3_key_prefix"):
        SyncContentsManager(root_dir=str(tmp_path), s3_bucket="work").location  # noqa: B018


def test_the_extensions_location_wins_over_the_managers_traits(tmp_path, caplog):
    manager = SyncContentsManager(
        root_dir=str(tmp_path), workspace_location=LOCATION, s3_bucket="elsewhere"
    )
    manager.log = logging.getLogger("test-location")
    with caplog.at_level(logging.WARNING, "test-location"):
        assert manager.location is LOCATION
    assert "s3_bucket" in caplog.text and "c.CodePilot" in caplog.text


def test_the_store_talks_to_the_locations_endpoint(environ):
    store = S3Store(LOCATION)
    assert (store.bucket, store.endpoint, store.where) == (
        "work",
        "http://127.0.0.1:9",
        "s3://work at http://127.0.0.1:9",
    )
    # No endpoint of its own: the standard AWS variable, as botocore would choose.
    environ.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7")
    assert S3Store(WorkspaceLocation("work")).endpoint == "http://127.0.0.1:7"

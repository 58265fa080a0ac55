"""The project rows the Projects sidebar lists, from the hub's server models."""

from server_extension.projects import project_rows, project_state


def test_a_project_state_reads_the_hubs_pending_and_ready():
    assert project_state({"pending": "spawn", "ready": False}) == "starting"
    assert project_state({"pending": "stop", "ready": True}) == "stopping"
    assert project_state({"pending": None, "ready": True}) == "running"
    assert project_state({"pending": None, "ready": False, "stopped": True}) == "stopped"
    assert project_state({}) == "stopped"


def test_rows_put_the_default_project_first_even_before_its_first_start():
    servers = {
        "web": {"ready": True, "url": "http://maya.localhost:8000/user/maya/web/"},
        "api-2": {"ready": False, "stopped": True, "url": "/user/maya/api-2/"},
    }
    rows = project_rows("maya", "web", servers)
    assert [(row["label"], row["state"], row["current"]) for row in rows] == [
        ("default", "stopped", False),
        ("api-2", "stopped", False),
        ("web", "running", True),
    ]
    # The hub's URL (the owner's host with subdomains), else the path on this host.
    assert rows[0]["url"] == "/user/maya/" and rows[0]["name"] == ""
    assert rows[2]["url"] == "http://maya.localhost:8000/user/maya/web/"

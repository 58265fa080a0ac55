"""The first minutes again, with per-user hosts off (``CODEPILOT_SUBDOMAINS=false``):
every IDE on the hub's own origin, ``http://127.0.0.1:<port>``.

Only what the hosts change is run again: the lab opens with Terminal and Preview, the
Preview tile shows an app started in a terminal, and a second student cannot open the
first one's server or terminal. The tests and the student are test_first_minutes.py's,
collected here again; this module's ``browser_hub`` is the one they get.
"""

import pytest

from ..support.hubtools import start_hub
from .conftest import HUB
from .test_first_minutes import (  # noqa: F401 (fixtures and tests collected here too)
    other_student,
    student,
    test_lab_opens_in_the_workspace_with_terminal_and_preview,
    test_preview_tile_shows_the_app_started_in_a_terminal,
    test_second_student_cannot_attach_to_the_first_students_terminal,
    test_second_student_cannot_open_the_first_students_server,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser_hub(request):
    """The one-machine hub with every server on its own origin (forked servers)."""
    hub = start_hub(env={"CODEPILOT_SUBDOMAINS": "false"})
    assert hub.url.startswith("http://127.0.0.1:"), hub.url
    assert hub.server_url("ada").startswith(f"{hub.url}/user/ada/")
    request.config.stash[HUB] = hub
    yield hub
    hub.stop()
    del request.config.stash[HUB]

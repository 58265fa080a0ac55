import os

import pytest

from .hubtools import start_hub


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (Unix-user isolation)")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip_root)


@pytest.fixture(scope="session")
def hub():
    """The one-machine hub, as `make up` runs it, shared by the tests of a session."""
    running = start_hub()
    yield running
    running.stop()

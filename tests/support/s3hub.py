"""A one-machine hub whose workspaces live in a test's S3 server (moto on loopback)."""

import pytest

from .hubtools import start_hub


def s3_hub_fixture(bucket: str, prefix: str):
    """A module-scoped ``s3_hub`` fixture: the hub, with ``bucket`` and ``prefix`` on the
    module's ``s3`` fixture, as ``make up`` runs it with those settings."""

    @pytest.fixture(scope="module")
    def s3_hub(s3):
        env = {
            **s3.env,
            "CODEPILOT_S3_BUCKET": bucket,
            "CODEPILOT_S3_PREFIX": prefix,
            "CODEPILOT_S3_ENDPOINT_URL": s3.endpoint_url,
        }
        running = start_hub(env=env)
        yield running
        running.stop()

    return s3_hub

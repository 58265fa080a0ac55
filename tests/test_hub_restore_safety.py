"""What a start's restore does with an S3 copy it cannot trust, through the real hub:
a key no file name maps to is skipped and the server starts; a prefix emptied behind a
synced workspace fails the start with a message naming endpoint and prefix, and the
local files stay. Real hub, real servers, moto's S3 API.
"""

import pytest

from .support.hubtools import save_text, wait_until
from .support.s3hub import s3_hub_fixture
from .support.s3server import s3_server_fixture

pytestmark = pytest.mark.integration

BUCKET = "trust"
PREFIX = "course"

s3 = s3_server_fixture(buckets=(BUCKET,))
s3_hub = s3_hub_fixture(BUCKET, PREFIX)


def test_a_key_no_name_maps_to_does_not_stop_a_start(s3_hub, s3):
    keys = f"{PREFIX}/users/rita/default/"
    client = s3.client(direct=True)
    client.put_object(Bucket=BUCKET, Key=keys + ".s3keep", Body=b"")
    client.put_object(Bucket=BUCKET, Key=keys + "data\\results.csv", Body=b"from Windows")
    client.put_object(Bucket=BUCKET, Key=keys + "ok.txt", Body=b"ok")
    s3_hub.create_user("rita")
    s3_hub.start_server("rita")
    workspace = s3_hub.data_dir / "workspaces" / "rita" / "default"
    assert (workspace / "ok.txt").read_text() == "ok"
    assert "restore skipped" in s3_hub.log() and "results.csv" in s3_hub.log()


def test_an_emptied_prefix_fails_the_start_and_keeps_the_files(s3_hub, s3):
    s3_hub.create_user("sam")
    s3_hub.start_server("sam")
    headers = {"Authorization": f"token {s3_hub.user_token('sam')}"}
    for number in range(5):
        saved = save_text(s3_hub.server_url("sam"), f"essay{number}.md", "mine", headers)
        assert saved.status_code == 201, saved.text
    s3_hub.stop_server("sam")
    keys = f"{PREFIX}/users/sam/default/"
    listed = s3.keys(BUCKET, keys)
    s3.client(direct=True).delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in listed]}
    )

    response = s3_hub.api("POST", s3_hub.server_path("sam"))
    assert response.status_code in (201, 202, 500), response.text

    def refusal():
        lines = s3_hub.log().splitlines()
        return next((line for line in lines if "starting sam's server: Could not" in line), None)

    refusal = wait_until(refusal, 60, 0.2, "the refusal")
    assert f"s3://{BUCKET}/{keys}" in refusal and s3.endpoint_url in refusal
    workspace = s3_hub.data_dir / "workspaces" / "sam" / "default"
    assert sorted(path.name for path in workspace.glob("essay*.md")) == [
        f"essay{number}.md" for number in range(5)
    ]

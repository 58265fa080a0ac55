"""``storage = s3``: s3contents' ``S3ContentsManager`` on the shared workspace layout.

No local copy: notebooks and files live only in S3, so terminals do not see them. This
suits notebook-only classes; the bucket layout is the same as in sync mode, so a
workspace can switch between the two.
"""

from codepilot_contracts import layout

from .endpoint import configured_endpoint
from .location import WorkspaceLocation


def s3contents_config(location: WorkspaceLocation) -> dict:
    """``c.S3ContentsManager`` settings that open the workspace at ``location``."""
    config = {"bucket": location.bucket, "prefix": layout.s3contents_prefix(location.key_prefix)}
    # s3contents defaults to AWS us-east-1 and reads no AWS_ENDPOINT_URL* variable.
    endpoint = configured_endpoint(location.endpoint_url) or (
        f"https://s3.{location.region}.amazonaws.com" if location.region else ""
    )
    if endpoint:
        config["endpoint_url"] = endpoint
    if location.region:
        config["region_name"] = location.region
    return config

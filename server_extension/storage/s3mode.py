"""``storage = s3``: s3contents' ``S3ContentsManager`` on the shared workspace layout.

No local copy: notebooks and files live only in S3, so terminals do not see them. This
suits notebook-only classes; the bucket layout is the same as in sync mode, so a
workspace can switch between the two.
"""

from codepilot_contracts import layout

from .endpoint import configured_endpoint


def s3contents_config(
    bucket: str, key_prefix: str, endpoint_url: str = "", region: str = ""
) -> dict:
    """``c.S3ContentsManager`` settings that open the workspace at ``key_prefix``."""
    config = {"bucket": bucket, "prefix": layout.s3contents_prefix(key_prefix)}
    # s3contents defaults to AWS us-east-1 and reads no AWS_ENDPOINT_URL* variable.
    endpoint = configured_endpoint(endpoint_url) or (
        f"https://s3.{region}.amazonaws.com" if region else ""
    )
    if endpoint:
        config["endpoint_url"] = endpoint
    if region:
        config["region_name"] = region
    return config

"""Defaults both sides use, one value each."""

# Key prefix of everything Code Pilot keeps in a bucket.
S3_PREFIX = "codepilot"
# S3 region when none is configured (STS and S3 clients need one; MinIO accepts any).
S3_REGION = "us-east-1"
# Port the user's web app listens on, inside its pod or network namespace.
PREVIEW_PORT = 3000
# The workspace folder and S3 key segment of a user's unnamed (default) server.
DEFAULT_SERVER = "default"

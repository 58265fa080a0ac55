"""Where workspaces live in S3 and how user servers get keys for them: ``S3Settings``.

One value object for the hub's S3 settings, whichever hub reads them (the Helm values,
the one-machine ``CODEPILOT_*`` variables) and whoever uses them (the spawners, the
credential broker, ``credential_minter.py``).
"""

import os
import re
from dataclasses import dataclass

from codepilot_contracts import defaults
from codepilot_contracts.env import env_name

STS = "sts"
STATIC = "static"
MODES = (STS, STATIC)

STATIC_MODE_WARNING = (
    "S3 credentials are in STATIC mode: every user server gets the hub's own S3 keys, "
    "so ANY USER CAN READ, CHANGE AND DELETE EVERY OTHER USER'S FILES in the bucket. "
    "Use mode 'sts' (AssumeRole with per-user session policies) wherever users are not "
    "all trusted."
)

# Characters that IAM reads as wildcards or policy variables inside a Resource or prefix.
IAM_SPECIAL = re.compile(r"[*?$]")


@dataclass(frozen=True)
class S3Settings:
    """Where workspaces live and how user servers get keys for them."""

    bucket: str
    prefix: str = defaults.S3_PREFIX
    endpoint_url: str = ""
    region: str = defaults.S3_REGION
    mode: str = STS
    role_arn: str = ""
    duration_seconds: int = 3600

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"S3 credentials mode must be one of {MODES}, not {self.mode!r}")
        if self.mode == STS and self.bucket and not self.role_arn:
            raise ValueError(
                "S3 credentials mode 'sts' needs the ARN of the role to assume (s3.credentials."
                "roleArn); use mode 'static' only if the S3 service has no STS"
            )
        if not 900 <= self.duration_seconds <= 43200:
            raise ValueError("S3 credential duration must be 900 to 43200 seconds (STS limits)")
        if IAM_SPECIAL.search(self.bucket + self.prefix):
            raise ValueError("the S3 bucket and prefix must not contain '*', '?' or '$'")

    @classmethod
    def from_environ(cls, environ=os.environ) -> "S3Settings":
        """From the ``CODEPILOT_S3_*`` variables the hub gives the credential broker."""
        defaults_of = cls(bucket="")
        values = {
            name: environ.get(variable, str(getattr(defaults_of, name)))
            for name, variable in _SETTINGS_VARIABLES.items()
        }
        values["duration_seconds"] = int(values["duration_seconds"])
        return cls(**values)

    def to_environ(self) -> dict[str, str]:
        """The inverse of ``from_environ``."""
        return {
            variable: str(getattr(self, name)) for name, variable in _SETTINGS_VARIABLES.items()
        }


# S3Settings field -> its variable. The ones the user server shares are named by the
# environment contract (its ``c.CodePilot.s3_*`` traits); the rest are the hub's own.
_SETTINGS_VARIABLES = {
    "bucket": env_name("s3_bucket"),
    "prefix": env_name("s3_prefix"),
    "endpoint_url": env_name("s3_endpoint_url"),
    "region": env_name("s3_region"),
    "mode": "CODEPILOT_S3_CREDENTIALS_MODE",
    "role_arn": "CODEPILOT_S3_ROLE_ARN",
    "duration_seconds": "CODEPILOT_S3_CREDENTIALS_DURATION",
}

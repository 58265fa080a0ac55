"""The value sets the chart is rendered with across the chart, image and cluster tests.

Secrets in them are distinctive strings, so a test can look for them in every rendered
object and find them only inside Secrets.
"""

import copy

DB_URL = "postgresql://hub:db-password-7f3a@db.example.com:5432/codepilot"
STATIC_KEY_ID = "AKIASTATICKEYID00001"
STATIC_SECRET = "static-secret-key-9d2c0b7e5a"
COOKIE_SECRET = "ab" * 32
PROXY_TOKEN = "proxy-token-" + "x" * 60
OAUTH_SECRET = "oauth-client-secret-55e1"

VALUE_SETS = {
    "default": {},
    "subdomain": {
        "hub": {"subdomainHost": "https://codepilot.example.com"},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": {"secretName": "codepilot-wildcard-tls"},
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        },
        "proxy": {"service": {"type": "ClusterIP"}},
    },
    "external-db": {"hub": {"db": {"url": DB_URL}}},
    "static-s3": {
        "s3": {
            "bucket": "codepilot-workspaces",
            "endpointUrl": "https://minio.example.com",
            "accessKeyId": STATIC_KEY_ID,
            "secretAccessKey": STATIC_SECRET,
            "credentials": {"mode": "static"},
        }
    },
    "sts": {
        "s3": {
            "bucket": "codepilot-workspaces",
            "existingSecret": "codepilot-hub-s3",
            "credentials": {
                "mode": "sts",
                "roleArn": "arn:aws:iam::123456789012:role/codepilot-users",
                "durationSeconds": 7200,
            },
        },
        "hub": {
            "serviceAccount": {"annotations": {"example.com/role": "codepilot"}},
        },
    },
    "preview": {
        "preview": {"domain": "apps.example.net", "tls": {"secretName": "apps-wildcard-tls"}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "codepilot.example.com",
            "tls": {"secretName": "codepilot-tls"},
        },
        "proxy": {"service": {"type": "ClusterIP"}},
    },
    "gitops": {"hub": {"existingSecret": "codepilot-tokens"}},
    "ingress-off": {
        "ingress": {"enabled": False},
        "proxy": {"service": {"type": "NodePort", "port": 8080}},
    },
    "everything": {
        "hub": {
            "baseUrl": "/ide/",
            "cookieSecret": COOKIE_SECRET,
            "imagePullSecrets": ["registry-credentials"],
            "authenticator": {
                "class": "generic-oauth",
                "config": {"client_id": "codepilot", "client_secret": OAUTH_SECRET},
            },
            "groups": {"cs101": {"teachers": ["ada"], "students": ["bob", "cy"]}},
            "nodeSelector": {"pool": "system"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "hub"}],
        },
        "proxy": {
            "secretToken": PROXY_TOKEN,
            "service": {"loadBalancerSourceRanges": ["203.0.113.0/24"]},
        },
        "singleuser": {"extraEnv": {"PIP_INDEX_URL": "https://pypi.example.com/simple"}},
        "ingress": {"enabled": True, "host": "ide.example.com"},
        "networkPolicy": {
            "singleuser": {
                "allowPrivateRanges": True,
                "extraEgress": [
                    {
                        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                        "ports": [{"port": 9000, "protocol": "TCP"}],
                    }
                ],
            }
        },
        "prePuller": {"enabled": True},
    },
}


def with_changes(base: dict, **changes) -> dict:
    """A copy of ``base`` with ``a__b__c=value`` changes (nested keys joined by ``__``)."""
    values = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = values
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return values

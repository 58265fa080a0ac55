"""What the hub side uses of other projects that they do not document as API, one module
per project: ``kubespawner``, ``jupyterhub``, ``aiohttp``.

Callers import these members from here only, never the upstream names themselves.
``tests/test_upstream_api.py`` checks the behaviour each one relies on, one named test per
use, so an upgrade that changes it fails there and not in a cluster. ("Upstream" here
means the projects Code Pilot is built from, not the preview gateway's connections to
apps, ``services/preview/appconnection.py``.)
"""

# What each module's checks were last made on; each lies in the range pyproject allows.
CHECKED_VERSIONS = {
    "jupyterhub": "6.1.1",
    "jupyterhub-kubespawner": "7.1.0",
    "aiohttp": "3.14.5",
}

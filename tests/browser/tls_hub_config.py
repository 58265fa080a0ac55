# Extra hub config for a test hub served over HTTPS: configurable-http-proxy ends TLS
# with the test's own certificate (for hub.example.test and *.hub.example.test).
import os

c = get_config()  # noqa: F821 (provided by JupyterHub)
c.JupyterHub.ssl_cert = os.environ["CODEPILOT_TEST_TLS_CERT"]
c.JupyterHub.ssl_key = os.environ["CODEPILOT_TEST_TLS_KEY"]

# JupyterHub config for Kubernetes, installed by the Helm chart (helm/codepilot).
# Settings come from the chart's values, mounted at /usr/local/etc/codepilot/values.yaml
# (CODEPILOT_VALUES_FILE overrides the path); secrets come as environment variables:
# CONFIGPROXY_AUTH_TOKEN, JPY_COOKIE_SECRET, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
# CODEPILOT_DB_URL and CODEPILOT_PREVIEW_API_TOKEN. See codepilot_spawner/kubernetes/values.py
# for how each value is read.
import logging
import os
import sys
from dataclasses import replace
from urllib.parse import urlparse

from jupyterhub.utils import url_path_join

from codepilot_contracts.starters import PACKAGED_STARTERS
from codepilot_spawner.kubernetes.values import (
    authenticator_class,
    authenticator_config,
    class_login_hook,
    classroom_groups,
    classroom_users,
    configured_starters,
    culler_service,
    database_url,
    hub_teachers,
    load_values,
    preview_settings,
    release_name,
    s3_settings,
    teacher_roles,
    typed_value,
    values_file_path,
)
from codepilot_spawner.s3settings import STATIC, STATIC_MODE_WARNING
from codepilot_spawner.services import broker
from codepilot_spawner.services.classpage import hubservice as class_page
from codepilot_spawner.services.declaration import merge_roles
from codepilot_spawner.services.preview import hubservice as preview_service
from codepilot_spawner.services.servicelife import with_hub_pid
from codepilot_spawner.spawners.projectlimits import ProjectLimit

c = get_config()  # noqa: F821 (provided by JupyterHub)
values = load_values(values_file_path())


def value(key, kind, default):
    return typed_value(values, key, kind, default)


release = release_name()
hub_connect_url = os.environ.get("CODEPILOT_HUB_CONNECT_URL", "")
# Where user pods reach the hub pod's services (the broker, the preview API).
hub_host = urlparse(hub_connect_url).hostname or "127.0.0.1"
# The hub pod's own address, where the hub registers its services: the Service answers
# only once the pod is Ready, which the hub waits on its services to become. On an
# IPv6 cluster it is an IPv6 address: every listener takes that family's any-address
# (an IPv4-only kernel may have no IPv6 at all), and URLs bracket it.
pod_ip = os.environ.get("POD_IP") or "127.0.0.1"
any_ip = "::" if ":" in pod_ip else "0.0.0.0"
pod_host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip

# --- hub, proxy, database ----------------------------------------------------------------
base_url = value("hub.baseUrl", str, "/")
c.JupyterHub.base_url = base_url
# The chart's one result (hub.subdomainHost, else with hub.subdomains from ingress.host);
# empty: per-user hosts are off, and the class page says what that exposes teachers to.
c.JupyterHub.subdomain_host = value("hub.subdomainHost", str, "")
# Users' hosts may set cookies for the hub's domain; over HTTPS the hub's login cookie is
# a __Host- cookie, which none of them can set (README, Security).
c.JupyterHub.cookie_host_prefix_enabled = c.JupyterHub.subdomain_host.startswith("https://")
c.JupyterHub.hub_ip = any_ip
c.JupyterHub.hub_port = 8081
if hub_connect_url:
    c.JupyterHub.hub_connect_url = hub_connect_url
c.JupyterHub.db_url = database_url(
    os.environ.get("CODEPILOT_DB_URL")
    or value("hub.db.url", str, "")
    or "sqlite:////srv/codepilot/jupyterhub.sqlite"
)
c.JupyterHub.cookie_secret_file = "/srv/codepilot/jupyterhub_cookie_secret"  # if no env
# The proxy runs in its own pod and keeps routes when the hub restarts; so do user pods.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = os.environ.get("CODEPILOT_PROXY_API_URL", "")
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = value("hub.namedServers.enabled", bool, True)
c.JupyterHub.named_server_limit_per_user = ProjectLimit(value("hub.namedServers.limit", int, 5))

# --- who may log in -------------------------------------------------------------------------
Authenticator = authenticator_class(values)
c.JupyterHub.authenticator_class = Authenticator
c.Authenticator.admin_users = set(value("hub.adminUsers", list, []))
# Safe unless said otherwise: only admins, the users named in groups and users an admin
# adds may log in. `hub.authenticator.config` can set allow_all and the like.
c.Authenticator.allowed_users = classroom_users(values)
c.Authenticator.allow_existing_users = True
for trait, setting in authenticator_config(values).items():
    setattr(c[Authenticator.__name__], trait, setting)

# --- classes: groups and what teachers may do -----------------------------------------------
# hub.teachers: the one-machine class (teachers, and everyone else in students), with the
# same groups, login hook and teacher role; hub.groups: named classes. Both may be set.
c.JupyterHub.load_groups = classroom_groups(values)
login_hook = class_login_hook(values)
if login_hook:
    c.Authenticator.post_auth_hook = login_hook
roles = teacher_roles(values)
services = []

# --- the spawner ------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "codepilot_spawner.CodePilotSpawner"
spawner = c.CodePilotSpawner
spawner.namespace = os.environ.get("POD_NAMESPACE", "default")
spawner.release = release
spawner.image = f"{value('singleuser.image.name', str, 'ghcr.io/codepilot/runner')}:" + str(
    value("singleuser.image.tag", (str, int, float), "0.1.0")
)
spawner.image_pull_policy = value("singleuser.image.pullPolicy", str, "IfNotPresent")
spawner.uid = value("singleuser.uid", int, 1000)
spawner.preview_port = value("singleuser.previewPort", int, 3000)
spawner.workspace_size_limit = str(value("singleuser.workspaceSizeLimit", (str, int), "10Gi"))
spawner.start_timeout = value("singleuser.startTimeout", int, 300)
spawner.termination_grace_period = value("singleuser.terminationGracePeriodSeconds", int, 60)
spawner.cpu_guarantee = value("singleuser.cpu.guarantee", (int, float), 0.25)
spawner.cpu_limit = value("singleuser.cpu.limit", (int, float), 2)
spawner.mem_guarantee = str(value("singleuser.memory.guarantee", (str, int), "512M"))
spawner.mem_limit = str(value("singleuser.memory.limit", (str, int), "2G"))
spawner.starters = configured_starters(values)
# Settings of every user server (c.CodePilot.*): code intelligence in the editor (language
# servers) and live pairing (real-time collaboration).
spawner.codepilot_settings = {
    "code_intelligence": value("singleuser.codeIntelligence", bool, True),
    "collaboration": value("singleuser.collaboration", bool, True),
}
spawner.sizes = value("singleuser.sizes", list, [])
spawner.environment = {
    name: str(setting) for name, setting in value("singleuser.extraEnv", dict, {}).items()
}
# Private registries and dedicated nodes for user pods.
spawner.image_pull_secrets = [str(name) for name in value("singleuser.imagePullSecrets", list, [])]
spawner.node_selector = {
    str(k): str(v) for k, v in value("singleuser.nodeSelector", dict, {}).items()
}
spawner.tolerations = value("singleuser.tolerations", list, [])

# --- S3 and per-user credentials -----------------------------------------------------------
s3 = s3_settings(values)
spawner.s3 = s3
# In sts mode servers renew their keys at the broker, in the hub pod, through the hub's
# Service (it listens on every address of the pod).
wiring = broker.broker_wiring(
    s3, f"http://{hub_host}:{broker.DEFAULT_PORT}", base_url, bind_ip=any_ip
)
if wiring:
    # Servers call the Service; the hub checks the broker at the pod's own address.
    own_url = f"http://{pod_host}:{broker.DEFAULT_PORT}"
    wiring = replace(wiring, service=wiring.service.at(own_url))
    wiring.apply(c, spawner, services, roles)
elif s3.bucket and s3.mode == STATIC:
    logging.getLogger("JupyterHub").warning(STATIC_MODE_WARNING)

# --- the idle culler ------------------------------------------------------------------------
# A preview in use is activity: the preview gateway reports it to the hub every few
# seconds (users:activity), so such a server is not culled.
culler = culler_service(values, sys.executable)
if culler:
    culler.add_to(services, roles)

# --- previews on origins of their own ---------------------------------------------------------
# The gateway is a Deployment of its own (<release>-preview), registered here as an
# external service with the token its pods hold: previews (<label>.<preview.domain>) come
# from the ingress controller to it; its sign-in and share API (hub origin) from the proxy
# and user servers to its Service. It reaches each app through the relay in the user pod,
# and keeps share levels in the properties of a hub group (any number of replicas).
preview = preview_settings(values)
if preview:
    gateway = preview_service.external_service(
        preview.gateway_url, os.environ["CODEPILOT_PREVIEW_API_TOKEN"], preview.public_url
    )
    gateway.add_to(services, roles)
    c.JupyterHub.load_groups = {
        **c.JupyterHub.load_groups,
        preview_service.SHARES_GROUP: {"users": []},  # properties: the gateway's
    }
    spawner.preview_domain = preview.domain
    spawner.preview_scheme = preview.scheme
    spawner.preview_relay_port = preview.relay_port
    # The relay runs from the hub's image: it speaks the gateway's version, whatever
    # the runner's tag (an older relay would not know what a newer hub asks of it).
    relay_image = value("preview.relayImage", dict, {})
    if relay_image.get("name"):
        spawner.preview_relay_image = f"{relay_image['name']}:{relay_image.get('tag', '')}"
        spawner.preview_relay_image_pull_policy = str(relay_image.get("pullPolicy", ""))
        relay_pull_secrets = [str(n) for n in value("preview.relayImagePullSecrets", list, [])]
        spawner.image_pull_secrets = list(
            dict.fromkeys([*spawner.image_pull_secrets, *relay_pull_secrets])
        )
    spawner.preview_api_url = preview.gateway_url + url_path_join(
        base_url, "services", preview_service.SERVICE_NAME, "/"
    )

# --- the class page, with hub.teachers (the one-machine class) -------------------------------
# A hub service in the hub pod, on the class page port of the pod's address: the proxy
# (another pod) forwards /services/codepilot/ there. It reads each student's sync state
# through the proxy's public Service, and share levels from the preview gateway.
CLASS_PAGE_PORT = 8084
if hub_teachers(values):
    class_page_args = [
        "--ClassPageApp.proxy_url="
        + os.environ.get("CODEPILOT_PROXY_PUBLIC_URL", f"http://{release}-proxy-public:80"),
        f"--ClassPageApp.subdomains={bool(c.JupyterHub.subdomain_host)}",
        f"--ClassPageApp.configured_starters={list(spawner.starters or PACKAGED_STARTERS)!r}",
    ]
    if preview:
        class_page_args += [
            f"--ClassPageApp.preview_api_url={preview.gateway_url}"
            + url_path_join(base_url, "services", preview_service.SERVICE_NAME, "/"),
            f"--ClassPageApp.preview_domain={preview.domain}",
            f"--ClassPageApp.preview_scheme={preview.scheme}",
        ]
    page = class_page.hub_service(CLASS_PAGE_PORT, class_page_args)
    page.at(f"http://{pod_host}:{CLASS_PAGE_PORT}").add_to(services, roles)
    roles.extend(class_page.classroom_roles())
    # Teachers land on the class page, linked as "Class" from every hub page.
    c.JupyterHub.default_url = class_page.teachers_land_on_class_page
    c.JupyterHub.template_paths = [str(class_page.HUB_TEMPLATES)]

c.JupyterHub.services = with_hub_pid(services, os.getpid())
c.JupyterHub.load_roles = merge_roles(roles)

# --- extra config from the values, last so it wins -------------------------------------------
extra_config = value("hub.extraConfig", str, "")
if extra_config:
    exec(compile(extra_config, "hub.extraConfig", "exec"))

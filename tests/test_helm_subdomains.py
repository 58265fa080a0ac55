"""Per-user hosts on Kubernetes: on by default wherever the chart knows the hub's host.

With ``ingress.host`` set, each user's servers are served on ``<user>.<host>``: the proxy
routes by host, the Ingress takes the wildcard host (and its certificate), and the hub
gets the one subdomain host the chart computed. With ``hub.subdomains=false``, or no
host known (a port-forward, a bare LoadBalancer IP), they are off and NOTES.txt says
plainly that teachers and admins who open a student's IDE are exposed to its code.
"""

import kubernetes_validate
import pytest

from .support.helm import CHART, RELEASE, install_dry_run, render, run_helm
from .support.kube_hub import load_hub_config
from .support.manifests import one, rendered_hub_values
from .support.value_sets import with_changes

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubeconfig")]

HOST = "codepilot.example.com"
WITH_HOST = {
    "ingress": {"enabled": True, "host": HOST, "tls": {"secretName": "codepilot-tls"}},
    "proxy": {"service": {"type": "ClusterIP"}},
    "hub": {"teachers": ["ana"]},  # the class page, which warns when hosts are off
}
EXPOSED = "teachers and admins who open a\nstudent's IDE are exposed to that student's code"


def proxy_command(objects) -> list[str]:
    deployment = one(objects, "Deployment", f"{RELEASE}-proxy")
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


def proxy_settings_checksum(objects) -> str:
    deployment = one(objects, "Deployment", f"{RELEASE}-proxy")
    return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/proxy-settings"]


def ingress_hosts(objects) -> tuple[list[str], list[dict]]:
    """The hub Ingress's rule hosts and its tls entries."""
    ingress = one(objects, "Ingress", f"{RELEASE}-proxy")
    return [rule.get("host") for rule in ingress["spec"]["rules"]], ingress["spec"].get("tls")


def class_page_subdomains(c) -> str:
    """The class page's ``subdomains`` argument, as the hub config starts it."""
    (page,) = [s for s in c.JupyterHub.services if s["name"] == "codepilot"]
    (argument,) = [a for a in page["command"] if a.startswith("--ClassPageApp.subdomains=")]
    return argument.split("=", 1)[1]


def hub_subdomain_host(objects) -> str:
    return rendered_hub_values(objects)["hub"]["subdomainHost"]


def validate(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)


@pytest.fixture(scope="module")
def with_host(helm, values_dir):
    """Objects and notes of the default values plus an Ingress host, rendered once."""
    return install_dry_run(helm, WITH_HOST, values_dir)


def test_a_known_host_turns_per_user_hosts_on(with_host, tmp_path):
    objects, notes = with_host
    validate(objects)
    assert "--host-routing" in proxy_command(objects)
    hosts, tls = ingress_hosts(objects)
    assert hosts == [HOST, f"*.{HOST}"]
    assert tls == [{"secretName": "codepilot-tls", "hosts": hosts}]
    # The hub gets the chart's result, not the rule: it reads one key and derives nothing.
    assert hub_subdomain_host(objects) == f"https://{HOST}"
    assert "subdomains" not in rendered_hub_values(objects)["hub"]
    c = load_hub_config(rendered_hub_values(objects), tmp_path)
    assert c.JupyterHub.subdomain_host == f"https://{HOST}"
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    assert class_page_subdomains(c) == "True"
    assert f"served on a host of their own: <user>.{HOST}" in notes
    assert "per-user hosts are off" not in notes


def test_without_tls_the_subdomain_host_is_http(helm, values_dir):
    objects = render(helm, with_changes(WITH_HOST, ingress__tls={"secretName": ""}), values_dir)
    assert hub_subdomain_host(objects) == f"http://{HOST}"
    assert ingress_hosts(objects) == ([HOST, f"*.{HOST}"], None)


def test_turned_off_says_teachers_are_exposed(helm, values_dir, with_host, tmp_path):
    objects, notes = install_dry_run(
        helm, with_changes(WITH_HOST, hub__subdomains=False), values_dir
    )
    validate(objects)
    assert "--host-routing" not in proxy_command(objects)
    hosts, tls = ingress_hosts(objects)
    assert hosts == [HOST]
    assert tls == [{"secretName": "codepilot-tls", "hosts": [HOST]}]
    assert hub_subdomain_host(objects) == ""
    c = load_hub_config(rendered_hub_values(objects), tmp_path)
    assert c.JupyterHub.subdomain_host == ""
    assert class_page_subdomains(c) == "False"
    assert "WARNING: per-user hosts are off (hub.subdomains=false)." in notes
    assert EXPOSED in notes
    assert "  - set hub.subdomains=true\n" in notes
    assert "set ingress.host" not in notes  # it is set already
    # Turning them on or off restarts the proxy (its routing mode changes).
    assert proxy_settings_checksum(objects) != proxy_settings_checksum(with_host[0])


@pytest.mark.parametrize(
    "values",
    [
        {},  # a LoadBalancer IP
        {"proxy": {"service": {"type": "ClusterIP"}}},  # a port-forward
        {"ingress": {"enabled": True}},  # an Ingress for any host
        {"ingress": {"enabled": False, "host": HOST}},  # a host with no Ingress to serve it
    ],
    ids=["load-balancer", "port-forward", "ingress-without-host", "host-without-ingress"],
)
def test_no_known_host_keeps_them_off_and_says_so(helm, values_dir, values):
    objects, notes = install_dry_run(helm, values, values_dir)
    assert "--host-routing" not in proxy_command(objects)
    assert hub_subdomain_host(objects) == ""
    if values.get("ingress", {}).get("enabled"):
        assert ingress_hosts(objects) == ([None], None)
    assert "WARNING: per-user hosts are off (the chart knows no host name for the hub)." in notes
    assert EXPOSED in notes
    assert "  - set ingress.host (with ingress.enabled) or hub.subdomainHost\n" in notes


def test_an_explicit_subdomain_host_wins(helm, values_dir):
    given = "https://users.example.org:8443"
    objects, notes = install_dry_run(
        helm, with_changes(WITH_HOST, hub__subdomainHost=given), values_dir
    )
    assert hub_subdomain_host(objects) == given
    assert "--host-routing" in proxy_command(objects)
    assert ingress_hosts(objects)[0] == [HOST, "*.users.example.org"]
    assert "<user>.users.example.org" in notes
    # Without an Ingress too (TLS ends at the load balancer).
    plain = render(helm, {"hub": {"subdomainHost": given}}, values_dir)
    assert hub_subdomain_host(plain) == given
    assert "--host-routing" in proxy_command(plain)


def test_preview_hub_url_gives_the_scheme_when_tls_ends_before_the_ingress(helm, values_dir):
    values = with_changes(
        WITH_HOST,
        ingress__tls={"secretName": ""},
        preview={"domain": "apps.example.net", "hubUrl": f"https://{HOST}"},
    )
    objects = render(helm, values, values_dir)
    assert hub_subdomain_host(objects) == f"https://{HOST}"


def template_error(helm, values, tmp) -> str:
    result = run_helm(helm, "template", RELEASE, str(CHART), values=values, tmp=tmp)
    assert result.returncode != 0
    return result.stderr


def test_contradicting_or_mistyped_values_are_refused(helm, values_dir):
    both = {"hub": {"subdomains": False, "subdomainHost": f"https://{HOST}"}}
    assert "hub.subdomains=false turns per-user hosts off, but hub.subdomainHost is" in (
        template_error(helm, both, values_dir)
    )
    assert "/hub/subdomains" in template_error(helm, {"hub": {"subdomains": "no"}}, values_dir)


def test_a_preview_domain_under_users_hosts_is_refused(helm, values_dir):
    # User "apps" would be served on apps.codepilot.example.com, the preview domain:
    # that IDE could set cookies every preview gets.
    values = with_changes(WITH_HOST, preview={"domain": f"apps.{HOST}"})
    error = template_error(helm, values, values_dir)
    assert f"preview.domain apps.{HOST} is under the hosts of users' servers" in error
    # With per-user hosts off no user has that host.
    render(helm, with_changes(values, hub__subdomains=False), values_dir)

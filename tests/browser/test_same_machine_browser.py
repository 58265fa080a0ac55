"""A browser on the hub's own machine (a teacher trying `make up`, these tests) keeps its
requests while students' isolated servers start and stop.

Chromium drops every request in flight with ``ERR_NETWORK_CHANGED`` when an address on
the machine changes. Servers whose host links held an address cut the browser's page
loads, API calls and sign-ins at every classmate's start and stop.
"""

import pytest

from ..support.hubtools import server_state, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.root]

STUDENTS = ("ines", "joao", "kemal")
LOOPS = 8  # fetches kept in flight at once: some request is always on its way

FETCH_LOOPS = """(loops) => {
  window.fetches = {ok: 0, failed: []};
  window.keepFetching = true;
  for (let i = 0; i < loops; i++) {
    (async () => {
      while (window.keepFetching) {
        try {
          await (await fetch('/hub/api/?' + Math.random())).json();
          window.fetches.ok++;
        } catch (error) {
          window.fetches.failed.push(String(error));
        }
      }
    })();
  }
}"""


def test_requests_in_flight_survive_servers_starting_and_stopping(plain_hub, new_context):
    page = new_context("teacher").new_page()
    page.goto(f"{plain_hub.url}/hub/login")
    page.evaluate(FETCH_LOOPS, LOOPS)
    for student in STUDENTS:
        plain_hub.create_user(student)
        plain_hub.start_server(student)
    for student in STUDENTS:
        assert server_state(plain_hub, student)["network"]  # isolated
        plain_hub.stop_server(student)
    before = page.evaluate("() => window.fetches.ok")
    wait_until(lambda: page.evaluate("() => window.fetches.ok") > before + LOOPS, 10)
    fetches = page.evaluate("() => { window.keepFetching = false; return window.fetches; }")
    assert fetches["failed"] == [], fetches
    assert fetches["ok"] > 100

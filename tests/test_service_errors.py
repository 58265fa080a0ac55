"""The JSON error of the hub's services: what an error says, from tornado's public API."""

import json

from tornado import web

from codepilot_spawner.services.errors import error_body


def message(status_code, error):
    body = json.loads(error_body(status_code, error))
    assert body["status"] == status_code
    return body["message"]


def test_an_http_error_says_its_message_with_its_arguments_filled_in():
    assert message(409, web.HTTPError(409, "the name %s is taken", "flask")) == (
        "the name flask is taken"
    )
    assert message(400, web.HTTPError(400, "100% sure")) == "100% sure"  # no arguments


def test_without_a_message_the_reason_or_the_standard_phrase():
    assert message(409, web.HTTPError(409, reason="Name Taken")) == "Name Taken"
    assert message(404, web.HTTPError(404)) == "Not Found"


def test_an_unexpected_error_keeps_its_text_to_the_log():
    assert message(500, ValueError("secret path /srv/x")) == "Internal Server Error"
    assert message(599, None) == "Unknown"

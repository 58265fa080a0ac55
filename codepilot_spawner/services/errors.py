"""The JSON error every hub service of ours answers with (credential broker, class page,
preview sign-in and share API), built from tornado's public API only."""

import json

from tornado import httputil, web


def error_body(status_code: int, error: BaseException | None) -> str:
    """``{"status", "message"}`` for a handler's ``write_error``: an ``HTTPError``'s
    message (its arguments filled in, a "%" shown once), else its reason phrase, else
    the code's standard phrase. Other exceptions say no more than the phrase: their text
    stays in the log."""
    message = ""
    if isinstance(error, web.HTTPError):
        # Without arguments tornado keeps the message with every "%" doubled.
        message = error.log_message % error.args if error.log_message else error.reason
    message = message or httputil.responses.get(status_code, "Unknown")
    return json.dumps({"status": status_code, "message": message})

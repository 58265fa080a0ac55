"""What the hub's services use of tornado that it does not document as API. Checked on
tornado 6.0.0 to 6.6.1 (tornado comes with jupyterhub, which requires ``tornado>=5.1``).
"""


def status_reason(handler) -> str:
    """The reason phrase of a ``RequestHandler``'s response status: the one given with
    ``set_status`` or an ``HTTPError``, else the standard phrase of the code.

    Checked on tornado 6.0.0-6.6.1 (``RequestHandler._reason``). If it drifts, the JSON
    errors of the credential broker, the class page and the preview share API lose their
    message.
    """
    return handler._reason

"""Shared-password login with a password of their own for teachers.

With JupyterHub's shared-password login, anyone who knows the class password may log in
under any name; a teacher's name must not open with it, or every student could become a
teacher. A teacher is a listed one (``teacher_users``) or anyone in the hub's teachers
group (the admin panel moves people there, and a name taken off the list stays in it
until the admin removes it).

With ``confirm_new_accounts``, a name the hub does not know opens only when the login
form's "This is my first time here" box is ticked: a mistyped name is told so instead of
becoming a new, empty account.
"""

from hmac import compare_digest

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from tornado import web
from traitlets import Bool, Set, Unicode

from ..upstream_api.jupyterhub import find_hub_user, group_names
from .groups import TEACHERS_GROUP, join_class_group

# The login form's "This is my first time here" box (hub_templates/login.html).
NEW_ACCOUNT_FIELD = "new_account"


def new_account_message(username: str) -> str:
    return (
        f"There is no account named {username} yet. Check the spelling; if this is your "
        'first time here, tick "This is my first time here" and sign in again.'
    )


class ClassroomPasswordAuthenticator(SharedPasswordAuthenticator):
    """``SharedPasswordAuthenticator``, where ``teacher_users`` log in with
    ``teacher_password`` only (never with the students' ``user_password``)."""

    teacher_users = Set(
        Unicode(),
        help="""Users who log in with ``teacher_password`` (and not with
        ``user_password``); the one-machine hub fills it from CODEPILOT_TEACHERS.""",
    ).tag(config=True)

    teacher_password = Unicode(
        "",
        help="""The teachers' password. Empty: teachers cannot log in.""",
    ).tag(config=True)

    confirm_new_accounts = Bool(
        False,
        help="""Whether a name the hub does not know logs in only with the login form's
        ``new_account`` box ticked (the one-machine hub's login page has it); else the
        form says that no such account exists yet.""",
    ).tag(config=True)

    def is_teacher(self, handler, username: str) -> bool:
        if username in self.teacher_users:
            return True
        user = find_hub_user(handler, username) if handler is not None else None
        return user is not None and TEACHERS_GROUP in group_names(user)

    async def authenticate(self, handler, data):
        username = self.normalize_username(data["username"])
        if username not in self.admin_users and self.is_teacher(handler, username):
            password = data["password"]
            if self.teacher_password and compare_digest(password, self.teacher_password):
                return {"name": username, "admin": False}
            return None
        authenticated = await super().authenticate(handler, data)
        # Only after the class password is right: nobody learns which names exist.
        if (
            authenticated
            and self.confirm_new_accounts
            and handler is not None
            and find_hub_user(handler, username) is None
            and not data.get(NEW_ACCOUNT_FIELD)
        ):
            raise web.HTTPError(403, new_account_message(username))
        return authenticated

    def add_user(self, user):
        """A user the admin adds (admin panel, REST) joins their class group at once, as
        one who logs in does: the class page lists them before their first login. Also
        called for every user when the hub starts."""
        super().add_user(user)
        join_class_group(user, self.teacher_users, self.admin_users)

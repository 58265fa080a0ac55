"""Shared-password login with a password of their own for teachers.

With JupyterHub's shared-password login, anyone who knows the class password may log in
under any name; a teacher's name must not open with it, or every student could become a
teacher.
"""

from hmac import compare_digest

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Set, Unicode


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

    async def authenticate(self, handler, data):
        username = self.normalize_username(data["username"])
        if username in self.teacher_users and username not in self.admin_users:
            password = data["password"]
            if self.teacher_password and compare_digest(password, self.teacher_password):
                return {"name": username, "admin": False}
            return None
        return await super().authenticate(handler, data)

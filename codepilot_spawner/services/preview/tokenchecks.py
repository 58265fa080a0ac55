"""``Authorization: token`` on a preview: the hub's answers about tokens remembered, and
new tokens asked about at a bounded rate, so a script's requests cost the hub little."""

import hashlib
import time

from .servers import PreviewTarget
from .sessions import ViewerSession


def token_session(model: dict, token: str, target: PreviewTarget) -> ViewerSession:
    """A request's session from the hub's model of its ``Authorization`` token."""
    return ViewerSession(
        viewer=model["name"],
        token=token,
        scopes=frozenset(model.get("scopes", ())),
        label=target.label,
        start=target.start,
        expires=time.time() + 60,
    )


class TokenChecks:
    """What ``Authorization: token`` headers may cost the hub: the hub's answer about a
    token is remembered for ``remember`` seconds (by digest, at most ``size`` tokens each
    way), so a script or a page that sends the same token again costs no hub call and no
    share of the rate; new tokens are asked about at most ``rate`` a second (bursts of
    ``burst``)."""

    def __init__(self, rate=10.0, burst=20, remember=60.0, size=10_000):
        self.rate, self.burst, self.remember, self.size = rate, burst, remember, size
        self._refused: dict[bytes, float] = {}
        self._accepted: dict[bytes, tuple[float, dict]] = {}
        self._allowance, self._counted_at = float(burst), time.monotonic()

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode(errors="surrogateescape")).digest()

    def refused_lately(self, token: str) -> bool:
        return self._refused.get(self._digest(token), 0) > time.monotonic()

    def accepted_lately(self, token: str) -> dict | None:
        """The hub's model of a token it accepted less than ``remember`` seconds ago."""
        expires, model = self._accepted.get(self._digest(token), (0, None))
        return model if expires > time.monotonic() else None

    def may_ask(self) -> bool:
        """Whether the hub may be asked about one more token now."""
        now = time.monotonic()
        self._allowance = min(self.burst, self._allowance + (now - self._counted_at) * self.rate)
        self._counted_at = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    def refused(self, token: str) -> None:
        self._remember(self._refused, token, time.monotonic() + self.remember)

    def accepted(self, token: str, model: dict) -> None:
        self._remember(self._accepted, token, (time.monotonic() + self.remember, model))

    def _remember(self, answers: dict, token: str, answer) -> None:
        if len(answers) >= self.size:  # forget the oldest (dicts keep their order)
            del answers[next(iter(answers))]
        answers.pop(self._digest(token), None)  # a fresh answer goes to the end
        answers[self._digest(token)] = answer

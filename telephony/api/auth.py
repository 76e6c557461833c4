"""Who is calling the API: an agent by HTTP Basic (login and SIP password), the web CCP by
its session cookie, or an operator by the admin token.

ARCHITECTURE.md: every route accepts HTTP Basic with the agent's login and SIP password
(RFC 7617); the web CCP may add a session cookie on top, because a browser's WebSocket
cannot send an Authorization header. The admin token (``--admin-token`` or
``QCONNECT_ADMIN_TOKEN``) reads everything and acts on nothing: it is for dashboards.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from telephony.api.commands import ApiError

SESSION_COOKIE = "qconnect_session"
REALM = "qconnect"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an agent's login, or the admin (``agent`` is None)."""

    agent: str | None

    @property
    def admin(self) -> bool:
        return self.agent is None

    def may_read(self, agent: str) -> None:
        """403 unless this is ``agent`` or the admin."""
        if self.agent is not None and self.agent != agent:
            raise ApiError(f"{self.agent} may not see {agent}'s CCP", status=403)

    def may_act(self, agent: str) -> None:
        """403 unless this is ``agent``: an agent acts only on their own contacts, and the
        admin token only reads."""
        if self.agent is None:
            raise ApiError("the admin token reads; only the agent may act", status=403)
        if self.agent != agent:
            raise ApiError(f"{self.agent} may not act for {agent}", status=403)


class Authenticator:
    def __init__(self, passwords: Mapping[str, str], admin_token: str | None = None) -> None:
        self.passwords = dict(passwords)
        self.admin_token = admin_token or None
        self._sessions: dict[str, str] = {}

    def identify(self, authorization: str | None, cookie: str | None = None) -> Principal:
        """The caller of a request with this Authorization header and session cookie;
        ApiError 401 when there is none or it does not check out."""
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "basic":
                return Principal(self._basic(credentials.strip()))
            if scheme.lower() == "bearer":
                token = credentials.strip()
                if self.admin_token is not None and hmac.compare_digest(
                    token.encode(), self.admin_token.encode()
                ):
                    return Principal(None)
                raise ApiError("wrong admin token", status=401)
            raise ApiError(f"unsupported authorization scheme {scheme!r}", status=401)
        if cookie:
            agent = self._sessions.get(cookie)
            if agent is not None:
                return Principal(agent)
            raise ApiError("session expired: log in again", status=401)
        raise ApiError("authentication required (HTTP Basic: login and SIP password)", 401)

    def login(self, principal: Principal) -> str:
        """A new CCP session for an agent who authenticated with Basic."""
        assert principal.agent is not None
        token = secrets.token_urlsafe(32)
        self._sessions[token] = principal.agent
        return token

    def logout(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _basic(self, credentials: str) -> str:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError("malformed Basic credentials", status=401) from None
        login, sep, password = decoded.partition(":")
        expected = self.passwords.get(login)
        # compare_digest even for an unknown login, so timing does not tell logins apart
        ok = hmac.compare_digest(password.encode(), (expected or "\0").encode())
        if not sep or expected is None or not ok:
            raise ApiError("wrong login or password", status=401)
        return login

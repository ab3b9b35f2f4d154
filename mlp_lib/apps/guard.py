"""Who may talk to the local server: its own page, and nobody else's.

``mlp-lib serve`` runs on a student's machine while they browse the web, and
any page they open can send requests to ``http://127.0.0.1:8000``. So, as
Jupyter Server does, the server refuses:

* a ``Host`` that is not the address it serves on (``127.0.0.1``,
  ``localhost`` or ``[::1]`` with its port): a page of another site that
  resolves its own name to 127.0.0.1 (DNS rebinding) could otherwise read
  every answer (403);
* a state-changing request (POST) whose ``Origin`` (or, without one,
  ``Referer``) is another site's (403), and one whose body is not declared
  ``application/json`` (415): a page of another site can send a "simple"
  cross-site request (a form, ``text/plain``) without asking, but a JSON body
  needs the browser's CORS preflight, which this server never grants.

Bound to another address (``--host 0.0.0.0``), the server is reachable from
other machines under names it cannot know, so instead of checking ``Host`` it
asks every request for a token (generated, or ``--token``): the URL it prints
carries it once (``?token=...``), and the answer sets it as a cookie that only
this site's own requests send back (``SameSite=Strict``).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

__all__ = ["Guard", "LOOPBACK", "COOKIE"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
COOKIE = "mlp_lib_token"


def _query_tokens(target):
    """The ``token`` values in a request target's query string."""
    return parse_qs(urlsplit(target).query).get("token", [])


def _bracketed(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Guard:
    """The server's rules: the ``Host`` values it answers (all, when it asks for a
    token instead) and its token (None on a loopback address)."""

    hosts: frozenset
    token: str | None = None

    @classmethod
    def for_address(cls, host, port, token=None):
        """The guard of a server bound to ``host:port``: loopback addresses check
        ``Host``; any other needs a token (a new one unless ``token`` is given)."""
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ValueError("--token must be at least 16 characters")
        if host not in LOOPBACK:
            return cls(frozenset(), token or secrets.token_urlsafe(24))
        names = {"127.0.0.1", "localhost", "[::1]"}
        return cls(frozenset(f"{name}:{port}" for name in names), token)

    def refusal(self, method, target, headers):
        """``(status, message)`` for a request this server must not answer, else None.
        ``target`` is the request line's path with its query."""
        host = headers.get("Host", "")
        if self.hosts and host not in self.hosts:
            allowed = ", ".join(sorted(self.hosts))
            return 403, (
                f"Host {host!r} is not this server's address ({allowed}); open the page "
                f"at http://localhost:{next(iter(self.hosts)).rsplit(':', 1)[1]}/"
            )
        if self.token is not None and not self.authorised(target, headers):
            return 403, (
                "this server needs its token: open the address it printed (with ?token=...), "
                "or send the header 'Authorization: token TOKEN'"
            )
        if method != "POST":
            return None
        origin = headers.get("Origin")
        if origin is None and headers.get("Referer"):
            parts = urlsplit(headers["Referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin is not None and origin != f"http://{host}":
            return 403, (
                f"a request from another site ({origin}) may not change anything here; "
                f"only this server's own page (http://{host}) may"
            )
        kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            declared = f"it was declared {kind}" if kind else "it had no Content-Type"
            return 415, f"the body must be sent as application/json ({declared})"
        return None

    def authorised(self, target, headers):
        """Whether the request carries the token (query, header or cookie)."""
        offered = _query_tokens(target)
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "token":
            offered.append(value.strip())
        try:
            cookie = SimpleCookie(headers.get("Cookie", ""))
        except CookieError:
            cookie = {}
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        return any(self._is_token(value) for value in offered)

    def cookie_for(self, target):
        """The ``Set-Cookie`` value that keeps a token given in the address, or None."""
        if self.token is None or not any(map(self._is_token, _query_tokens(target))):
            return None
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def _is_token(self, value):
        return hmac.compare_digest(value.encode(), self.token.encode())

    def url(self, host, port):
        """The address to open (with the token, when there is one)."""
        name = "localhost" if host in LOOPBACK else _bracketed(host)
        return f"http://{name}:{port}/" + (f"?token={self.token}" if self.token else "")

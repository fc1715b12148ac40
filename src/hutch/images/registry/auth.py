"""Registry authentication: WWW-Authenticate challenges, credentials, bearer tokens.

A registry that wants credentials answers 401 with a challenge (RFC 7235):

    WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",
                      scope="repository:library/busybox:pull"

For ``Bearer`` (the distribution token spec) the client asks the realm for a
token (GET with ``service`` and ``scope``, Basic credentials when it has them)
and sends it as ``Authorization: Bearer <token>``; tokens are cached per scope
until they expire. For ``Basic`` it sends the credentials directly.

Credentials come from a file in Docker's config.json shape::

    {"auths": {"registry.example:5000": {"auth": "<base64 of user:password>"}}}

at $HUTCH_AUTH_FILE, or ``<hutch root>/auth.json``. Parsing is stdlib only;
fetching a token uses the httpx client it is handed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hutch.errors import InvalidArgument
from hutch.images.registry.errors import AuthError, RegistryError

if TYPE_CHECKING:
    import httpx

AUTH_FILE_ENV = "HUTCH_AUTH_FILE"
AUTH_FILE_NAME = "auth.json"
DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token server does not say (token spec)
REFRESH_MARGIN = 10  # seconds before expiry that a token is no longer used
MAX_TOKEN_RESPONSE = 1 << 20

_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68_RE = re.compile(r"([A-Za-z0-9._~+/-]+=*)[ \t]*(?:,|$)")


# --- challenges ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme (lower case) and parameters (names lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def token(self, chars: set[str] = _TCHAR) -> str:
        start = self.i
        while self.peek() and self.peek() in chars:
            self.i += 1
        return self.text[start:self.i]

    def quoted(self, where: str) -> str:
        assert self.peek() == '"'
        self.i += 1
        out = []
        while True:
            c = self.peek()
            if not c:
                raise InvalidArgument(f"{where}: a quoted string is not closed")
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                nxt = self.peek()
                if not nxt:
                    raise InvalidArgument(f"{where}: a quoted string ends in a backslash")
                out.append(nxt)
                self.i += 1
            else:
                out.append(c)

    def error(self, where: str, what: str) -> InvalidArgument:
        return InvalidArgument(f"{where}: {what} at character {self.i + 1}")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value (RFC 7235 section 4.1), in order.

    Several challenges may share one header, separated by commas; a parameter
    value is a token or a quoted string (with backslash escapes). Malformed
    input raises InvalidArgument saying where.
    """
    where = f"WWW-Authenticate header {header!r}"
    s = _Scanner(header)
    challenges: list[Challenge] = []
    while True:
        while s.peek() in (" ", "\t", ","):
            s.i += 1
        if not s.peek():
            break
        scheme = s.token()
        if not scheme:
            raise s.error(where, f"expected an auth scheme, found {s.peek()!r}")
        params: dict[str, str] = {}
        token68: str | None = None
        if s.peek() not in ("", " ", "\t", ","):
            raise s.error(where, f"unexpected {s.peek()!r} after the scheme {scheme!r}")
        s.skip_ws()
        m = _TOKEN68_RE.match(header, s.i)
        if m is not None:  # one blob after the scheme, like "Negotiate YII=="
            token68 = m.group(1)
            s.i = m.end(1)
        # Parameters until the next challenge (a token not followed by '=') or the end.
        while token68 is None:
            while s.peek() in (" ", "\t", ","):
                s.i += 1
            if not s.peek():
                break
            mark = s.i
            name = s.token()
            if not name:
                raise s.error(where, f"expected a parameter name, found {s.peek()!r}")
            s.skip_ws()
            if s.peek() != "=":
                s.i = mark  # the scheme of the next challenge
                break
            s.i += 1  # '='
            s.skip_ws()
            if s.peek() == '"':
                value = s.quoted(where)
            else:
                value = s.token()
                if not value:
                    raise s.error(where, f"parameter {name!r} has no value")
            params[name.lower()] = value
            s.skip_ws()
            if s.peek() not in ("", ","):
                raise s.error(where, f"expected ',' after parameter {name!r}, "
                                     f"found {s.peek()!r}")
        challenges.append(Challenge(scheme.lower(), params, token68))
    if not challenges:
        raise InvalidArgument(f"{where}: no challenge in it")
    return challenges


# --- credentials -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def auth_file_path(root: str) -> str:
    """$HUTCH_AUTH_FILE, else ``<root>/auth.json`` (root: the hutch instance's directory)."""
    return os.environ.get(AUTH_FILE_ENV) or os.path.join(root, AUTH_FILE_NAME)


def normalize_registry_key(key: str) -> str:
    """An "auths" key (``https://index.docker.io/v1/``, ``host:5000``) -> the registry name."""
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    key = key.split("/", 1)[0]
    if key in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return key


class AuthConfig:
    """Credentials by registry, as read from an auth file."""

    def __init__(self, entries: dict[str, Credential] | None = None, path: str | None = None):
        self.entries = dict(entries or {})
        self.path = path

    def get(self, registry: str) -> Credential | None:
        return self.entries.get(normalize_registry_key(registry))

    @classmethod
    def load(cls, path: str) -> AuthConfig:
        """Read ``path`` (a missing file means no credentials); InvalidArgument naming it."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_TOKEN_RESPONSE + 1)
        except FileNotFoundError:
            return cls({}, path)
        except OSError as e:
            raise InvalidArgument(f"cannot read the registry auth file {path}: "
                                  f"{e.strerror}") from None
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: bytes | str, path: str = "auth file") -> AuthConfig:
        where = f"registry auth file {path}"
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"{where} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where} must hold a JSON object with \"auths\"")
        auths = obj.get("auths", {})
        if not isinstance(auths, dict):
            raise InvalidArgument(f"{where}: \"auths\" must be an object of registries")
        entries: dict[str, Credential] = {}
        for key, entry in auths.items():
            if not isinstance(entry, dict):
                raise InvalidArgument(f"{where}: auths[{key!r}] must be an object")
            cred = _credential(entry, f"{where}: auths[{key!r}]")
            if cred is not None:
                entries[normalize_registry_key(key)] = cred
        return cls(entries, path)


def _credential(entry: dict[str, object], where: str) -> Credential | None:
    encoded = entry.get("auth")
    if encoded:
        if not isinstance(encoded, str):
            raise InvalidArgument(f"{where}.auth must be a base64 string of user:password")
        try:
            raw = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"{where}.auth is not valid base64 of user:password") \
                from None
        user, colon, password = raw.partition(":")
        if not colon or not user:
            raise InvalidArgument(f"{where}.auth must encode user:password (no ':' found)")
        return Credential(user, password)
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and user and isinstance(password, str):
        return Credential(user, password)
    return None  # an entry with only an identity token or a helper: not supported here


# --- tokens ----------------------------------------------------------------------------------

@dataclass(slots=True)
class _Token:
    header: str
    expires: float  # time.monotonic()


class Authenticator:
    """The Authorization header for each scope of one registry; thread-safe.

    ``header(scope)`` gives what is cached (or None); after a 401,
    ``challenge(client, response, scope)`` answers the challenge (fetching a
    token for Bearer) and returns the header to retry with.
    """

    def __init__(self, registry: str, credential: Credential | None,
                 auth_file: str | None = None) -> None:
        self.registry = registry
        self.credential = credential
        self.auth_file = auth_file
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.token_requests = 0  # how many tokens were fetched (for tests and stats)

    def header(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope)
            if token is None:
                return None
            if time.monotonic() >= token.expires:
                del self._tokens[scope]
                return None
            return token.header

    def forget(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)

    def _no_credentials(self) -> str:
        where = self.auth_file or f"${AUTH_FILE_ENV}"
        return f"no credentials for {self.registry} in {where}"

    def challenge(self, client: httpx.Client, response: httpx.Response, scope: str,
                  sent: str | None) -> str:
        """The Authorization header answering ``response``'s 401 for ``scope``.

        ``sent``: the header the refused request carried (refused again: the
        credentials are wrong, or the token lacks the scope).
        """
        value = response.headers.get("www-authenticate")
        if not value:
            raise AuthError(f"{self.registry} answered 401 Unauthorized without a "
                            "WWW-Authenticate challenge")
        challenges = parse_www_authenticate(value)
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is not None and cached.header != sent and \
                    time.monotonic() < cached.expires:
                return cached.header  # another thread fetched it meanwhile
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None:
                token = self._fetch_token(client, bearer, scope)
            elif basic is not None:
                if self.credential is None:
                    raise AuthError(f"{self.registry} asks for a user name and password "
                                    f"(Basic realm {basic.realm!r}): {self._no_credentials()}")
                if sent is not None and sent == self.credential.basic():
                    raise AuthError(f"{self.registry} refused the user name and password of "
                                    f"{self.credential.username!r} (from "
                                    f"{self.auth_file or 'the auth file'})")
                token = _Token(self.credential.basic(), float("inf"))
            else:
                schemes = ", ".join(c.scheme for c in challenges)
                raise AuthError(f"{self.registry} asks for authentication by {schemes}, "
                                "which hutch does not support (Bearer and Basic are)")
            if sent is not None and token.header == sent:
                who = self.credential.username if self.credential else "anonymous"
                raise AuthError(f"{self.registry} refused access to {scope} for {who!r} even "
                                "with a fresh token: the account lacks that permission")
            self._tokens[scope] = token
            return token.header

    def _fetch_token(self, client: httpx.Client, challenge: Challenge, scope: str) -> _Token:
        import httpx

        realm = challenge.realm
        if not realm or not realm.startswith(("https://", "http://")):
            raise AuthError(f"{self.registry}: the Bearer challenge has no usable realm "
                            f"(realm={realm!r})")
        scopes = [s for s in dict.fromkeys([*scope.split(" "),
                                            *challenge.params.get("scope", "").split(" ")])
                  if s]
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", s) for s in scopes)
        headers = {"Authorization": self.credential.basic()} if self.credential else {}
        self.token_requests += 1
        try:
            resp = client.get(realm, params=params, headers=headers)
        except httpx.HTTPError as e:
            raise RegistryError(f"cannot get a token for {self.registry} from {realm}: "
                                f"{e}") from None
        body = resp.content[:MAX_TOKEN_RESPONSE]
        if resp.status_code in (401, 403):
            if self.credential is None:
                raise AuthError(f"the token server {realm} of {self.registry} wants "
                                f"credentials (HTTP {resp.status_code}): "
                                f"{self._no_credentials()}")
            raise AuthError(f"the token server {realm} refused the credentials of "
                            f"{self.credential.username!r} for {self.registry} (HTTP "
                            f"{resp.status_code}): check {self.auth_file or 'the auth file'}")
        if resp.status_code != 200:
            raise RegistryError(f"the token server {realm} of {self.registry} answered HTTP "
                                f"{resp.status_code}: {_snippet(body)}")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            raise RegistryError(f"the token server {realm} answered something that is not a "
                                f"JSON object: {_snippet(body)}")
        token = obj.get("token") or obj.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} answered without a token")
        lifetime = obj.get("expires_in")
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        expires = time.monotonic() + max(float(lifetime) - REFRESH_MARGIN, 1.0)
        return _Token(f"Bearer {token}", expires)


def _snippet(body: bytes, n: int = 200) -> str:
    text = body[:n].decode("utf-8", "replace").strip()
    return text + ("..." if len(body) > n else "") if text else "(empty body)"

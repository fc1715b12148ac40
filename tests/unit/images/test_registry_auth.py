"""WWW-Authenticate parsing, the auth file, and the token cache of the registry client."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from hutch.errors import InvalidArgument
from hutch.images.registry.auth import (
    AuthConfig,
    Authenticator,
    Challenge,
    Credential,
    auth_file_path,
    normalize_registry_key,
    parse_www_authenticate,
)
from hutch.images.registry.errors import AuthError

# --- WWW-Authenticate ------------------------------------------------------------------------


def test_bearer_challenge_as_registries_send_it() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"')
    assert c == Challenge("bearer", {"realm": "https://auth.docker.io/token",
                                     "service": "registry.docker.io",
                                     "scope": "repository:library/busybox:pull,push"})
    assert c.realm == "https://auth.docker.io/token"


def test_several_challenges_spaces_tokens_and_escapes() -> None:
    header = ('Newauth realm="apps", type=1, title="Login to \\"apps\\"", '
              'Basic realm="simple",  BEARER  realm = "r" , error="insufficient_scope"')
    challenges = parse_www_authenticate(header)
    assert [c.scheme for c in challenges] == ["newauth", "basic", "bearer"]
    assert challenges[0].params == {"realm": "apps", "type": "1", "title": 'Login to "apps"'}
    assert challenges[1].params == {"realm": "simple"}
    assert challenges[2].params == {"realm": "r", "error": "insufficient_scope"}


def test_token68_and_bare_schemes() -> None:
    challenges = parse_www_authenticate("Negotiate YIIBhg==, Basic, Bearer realm=x")
    assert challenges[0] == Challenge("negotiate", {}, "YIIBhg==")
    assert challenges[1] == Challenge("basic", {})
    assert challenges[2].params == {"realm": "x"}
    # Parameter names are case-insensitive; the last of a repeated one wins.
    [c] = parse_www_authenticate('Basic Realm="a", REALM="b"')
    assert c.params == {"realm": "b"}


@pytest.mark.parametrize("header, message", [
    ("", "no challenge"),
    ("   ,  ", "no challenge"),
    ('Bearer realm="open', "not closed"),
    ('Bearer realm="x\\', "backslash"),
    ('Bearer service="x", realm=', "has no value"),
    ('Bearer realm="x" service="y"', "expected ','"),
    ('"Bearer"', "expected an auth scheme"),
    ('Bearer realm="a",="b"', "expected a parameter name"),
])
def test_malformed_challenges(header: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_www_authenticate(header)
    assert "WWW-Authenticate header" in str(info.value)


# --- the auth file ---------------------------------------------------------------------------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_auth_file_docker_shape(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {
        "registry.example:5000": {"auth": _b64("alice:pa:ss")},
        "https://index.docker.io/v1/": {"auth": _b64("bob:hub")},
        "http://other.example/some/path": {"username": "carol", "password": "pw"},
        "helper.example": {"identitytoken": "opaque"},  # not supported: no credential
    }, "credHelpers": {}}))
    config = AuthConfig.load(str(path))
    assert config.get("registry.example:5000") == Credential("alice", "pa:ss")
    assert config.get("docker.io") == Credential("bob", "hub")
    assert config.get("other.example") == Credential("carol", "pw")
    assert config.get("helper.example") is None
    assert config.get("registry.example") is None  # the port is part of the name
    assert "pa:ss" not in repr(config.get("registry.example:5000"))
    assert AuthConfig.load(str(tmp_path / "missing.json")).entries == {}


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", "JSON object"),
    ('{"auths": []}', '"auths" must be an object'),
    ('{"auths": {"r": "x"}}', r"auths\['r'\] must be an object"),
    ('{"auths": {"r": {"auth": "%%%"}}}', "not valid base64"),
    (json.dumps({"auths": {"r": {"auth": _b64("nocolon")}}}), "no ':' found"),
])
def test_bad_auth_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message) as info:
        AuthConfig.load(str(path))
    assert str(path) in str(info.value)


def test_auth_file_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUTCH_AUTH_FILE", raising=False)
    assert auth_file_path("/var/lib/hutch") == "/var/lib/hutch/auth.json"
    monkeypatch.setenv("HUTCH_AUTH_FILE", "/etc/hutch-auth.json")
    assert auth_file_path("/var/lib/hutch") == "/etc/hutch-auth.json"
    assert normalize_registry_key("https://registry-1.docker.io/v2/") == "docker.io"


# --- tokens: a fake token server behind httpx's MockTransport --------------------------------

class FakeTokenServer:
    def __init__(self, password: str = "pw", expires_in: int = 300) -> None:
        self.password = password
        self.expires_in = expires_in
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.headers.get("authorization") != Credential("alice", self.password).basic():
            return httpx.Response(401, json={"details": "no"})
        scopes = request.url.params.get_list("scope")
        return httpx.Response(200, json={"token": f"t{len(self.calls)}:{' '.join(scopes)}",
                                         "expires_in": self.expires_in})


def _challenge(scope: str) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate":
                                        f'Bearer realm="https://auth.example/token",'
                                        f'service="reg",scope="{scope}"'})


def test_bearer_tokens_are_fetched_once_per_scope() -> None:
    server = FakeTokenServer()
    client = httpx.Client(transport=httpx.MockTransport(server))
    auth = Authenticator("reg.example", Credential("alice", "pw"))
    pull = "repository:app:pull"
    assert auth.header(pull) is None
    header = auth.challenge(client, _challenge(pull), pull, None)
    assert header == f"Bearer t1:{pull}"
    assert auth.header(pull) == header  # cached
    [call] = server.calls
    assert call.url.params.get("service") == "reg"
    # A second thread that was refused without a header gets the cached token.
    assert auth.challenge(client, _challenge(pull), pull, None) == header
    assert len(server.calls) == 1
    # Another scope: another token, with both the asked and the challenged scopes.
    push = "repository:app:pull,push"
    header2 = auth.challenge(client, _challenge(push), push, None)
    assert header2 == f"Bearer t2:{push}" and auth.token_requests == 2
    # The cached token refused (revoked, expired early): a fresh one is fetched.
    header3 = auth.challenge(client, _challenge(push), push, header2)
    assert header3 == f"Bearer t3:{push}" and auth.header(push) == header3


def test_expired_tokens_are_not_used() -> None:
    server = FakeTokenServer(expires_in=1)  # less than the refresh margin: about 1 s
    client = httpx.Client(transport=httpx.MockTransport(server))
    auth = Authenticator("reg.example", Credential("alice", "pw"))
    scope = "repository:app:pull"
    auth.challenge(client, _challenge(scope), scope, None)
    auth._tokens[scope].expires = 0.0  # as if its time had passed
    assert auth.header(scope) is None


def test_bad_and_missing_credentials_say_so() -> None:
    client = httpx.Client(transport=httpx.MockTransport(FakeTokenServer()))
    scope = "repository:app:pull"
    bad = Authenticator("reg.example", Credential("alice", "wrong"), "/etc/auth.json")
    with pytest.raises(AuthError, match=r"refused the credentials of 'alice' for reg.example "
                                        r"\(HTTP 401\): check /etc/auth.json"):
        bad.challenge(client, _challenge(scope), scope, None)
    nobody = Authenticator("reg.example", None, "/etc/auth.json")
    with pytest.raises(AuthError, match="no credentials for reg.example in /etc/auth.json"):
        nobody.challenge(client, _challenge(scope), scope, None)


def test_basic_challenge() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    basic = httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
    cred = Credential("alice", "pw")
    auth = Authenticator("reg.example", cred)
    assert auth.challenge(client, basic, "s", None) == cred.basic()
    with pytest.raises(AuthError, match="refused the user name and password of 'alice'"):
        auth.challenge(client, basic, "s", cred.basic())
    with pytest.raises(AuthError, match="asks for a user name and password"):
        Authenticator("reg.example", None).challenge(client, basic, "s", None)
    other = httpx.Response(401, headers={"WWW-Authenticate": 'Digest realm="x"'})
    with pytest.raises(AuthError, match="by digest, which hutch does not support"):
        Authenticator("reg.example", cred).challenge(client, other, "s", None)

"""A real registry for tests and benchmarks: Debian's docker-registry on 127.0.0.1.

- ``LocalRegistry``: starts /usr/bin/docker-registry with its own config (a
  free port on 127.0.0.1, storage in a directory of the caller's), waits until
  it answers, and stops it by PID. With ``token=TokenAuth(...)`` it wants
  bearer tokens from that realm (auth.token), trusting its certificate.
- ``TokenServer``: a tiny token server (stdlib http.server in a thread) that
  checks Basic credentials and issues RS256 JWTs for the scopes asked. It
  needs the ``cryptography`` package (the test extra), imported when it starts.
- ``RecordingProxy``: an HTTP proxy in front of a registry that records every
  request (method, path, Range) and can break one response off after some
  bytes, or flip bytes of a response, to test resume and digest checks.

Every server listens on 127.0.0.1 only and stops when its ``with`` block ends.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """None when docker-registry is installed, else what is missing."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        return f"{REGISTRY_BIN} is missing (Debian package docker-registry; install.sh)"
    return None


@dataclass
class TokenAuth:
    realm: str
    service: str
    issuer: str
    cert_path: str


class LocalRegistry:
    """docker-registry on 127.0.0.1:<free port>, storage below ``workdir``."""

    def __init__(self, workdir: str, token: TokenAuth | None = None) -> None:
        self.workdir = workdir
        self.token = token
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(workdir, "registry.log")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        storage = os.path.join(self.workdir, "storage")
        os.makedirs(storage, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.token is not None:
            lines += ["auth:", "  token:",
                      f"    realm: {self.token.realm}",
                      f"    service: {self.token.service}",
                      f"    issuer: {self.token.issuer}",
                      f"    rootcertbundle: {self.token.cert_path}"]
        path = os.path.join(self.workdir, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 15.0) -> LocalRegistry:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        last = ""
        for _ in range(3):  # a free port may be taken between the probe and the bind
            self.port = free_port()
            config = self._config()
            log = open(self.log_path, "ab")  # noqa: SIM115 (the child holds it)
            try:
                self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    conn.request("GET", "/v2/")
                    status = conn.getresponse().status
                    conn.close()
                    if status in (200, 401):
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            last = self.log_tail()
            self.stop()
        raise RuntimeError(f"docker-registry did not start on 127.0.0.1: {last}")

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wipe(self) -> None:
        """Remove everything stored (the registry must be stopped)."""
        shutil.rmtree(os.path.join(self.workdir, "storage"), ignore_errors=True)


# --- a token server --------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(spki_der: bytes) -> str:
    """The ``kid`` docker-registry expects: base32 of sha256(SPKI)[:30], in groups of 4."""
    import hashlib
    raw = base64.b32encode(hashlib.sha256(spki_der).digest()[:30]).decode().rstrip("=")
    return ":".join(raw[i:i + 4] for i in range(0, len(raw), 4))


class _ServedHere:
    """An HTTP server of the test's own on 127.0.0.1 (a free port), in a thread."""

    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _serve(self, handler: type[http.server.BaseHTTPRequestHandler], name: str) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=name)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TokenServer(_ServedHere):
    """Issues bearer tokens for ``users`` (name -> password) on 127.0.0.1."""

    def __init__(self, workdir: str, users: dict[str, str], service: str = "hutch-test",
                 issuer: str = "hutch-test-issuer", lifetime: int = 300) -> None:
        self.workdir = workdir
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self.requests: list[dict[str, Any]] = []
        self._key: Any = None
        self.cert_path = os.path.join(workdir, "token-cert.pem")
        self.kid = ""

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def auth(self) -> TokenAuth:
        return TokenAuth(self.realm, self.service, self.issuer, self.cert_path)

    def _make_key(self) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        with open(self.cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = libtrust_key_id(spki)
        self._key = key

    def issue(self, subject: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, actions = parts[0], parts[-1]
            name = ":".join(parts[1:-1])
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service,
                  "exp": now + self.lifetime, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode())).encode()
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64url(signature)

    def start(self) -> TokenServer:
        self._make_key()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = None
                header = self.headers.get("Authorization", "")
                ok = True
                if header.startswith("Basic "):
                    try:
                        name, _, password = base64.b64decode(header[6:]).decode() \
                            .partition(":")
                    except (ValueError, UnicodeDecodeError):
                        name, password = "", None  # type: ignore[assignment]
                    ok = outer.users.get(name) == password
                    user = name
                outer.requests.append({"user": user, "ok": ok,
                                       "scope": query.get("scope", []),
                                       "service": query.get("service", [])})
                if url.path != "/token" or not ok or user is None:
                    body = b'{"details":"bad credentials"}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                token = outer.issue(user, query.get("scope", []))
                body = json.dumps({"token": token, "expires_in": outer.lifetime}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler, "token-server")
        return self

    def __enter__(self) -> TokenServer:
        return self.start()



# --- a recording, fault-injecting proxy ------------------------------------------------------

@dataclass
class Fault:
    """Break (``cut_after`` bytes, then close) or corrupt (flip a byte) the next
    ``times`` responses to GET requests whose path ends with ``path_suffix``."""

    path_suffix: str
    cut_after: int | None = None
    corrupt: bool = False
    times: int = 1


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int = 0
    client_port: int = 0  # the client's end of the connection (same port: kept alive)


_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


@dataclass
class RecordingProxy(_ServedHere):
    """Forward every request to ``upstream`` (host:port), recording it."""

    upstream: str
    hits: list[Hit] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _lock: Any = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def gets(self, suffix: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.method == "GET" and h.path.endswith(suffix)]

    def clear(self) -> None:
        with self._lock:
            self.hits.clear()

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if method == "GET" and fault.times > 0 and \
                        urllib.parse.urlsplit(path).path.endswith(fault.path_suffix):
                    fault.times -= 1
                    return fault
        return None

    def start(self) -> RecordingProxy:
        outer = self
        up_host, _, up_port = self.upstream.rpartition(":")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                hit = Hit(self.command, self.path, self.headers.get("Range"),
                          client_port=self.client_address[1])
                with outer._lock:
                    outer.hits.append(hit)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection(up_host, int(up_port), timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    hit.status = resp.status
                    fault = outer._fault_for(self.command, self.path) \
                        if resp.status in (200, 206) else None
                    if fault is not None and fault.corrupt and data:
                        data = data[:-1] + bytes([data[-1] ^ 0xFF])
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    announced = len(data) if self.command != "HEAD" else \
                        int(resp.getheader("Content-Length") or 0)
                    self.send_header("Content-Length", str(announced))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if fault is not None and fault.cut_after is not None:
                        self.wfile.write(data[:fault.cut_after])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        self._serve(Handler, "registry-proxy")
        return self

    def __enter__(self) -> RecordingProxy:
        return self.start()


"""A real registry on loopback: Debian's docker-registry (distribution v2), and images pushed to it.

Modes: anonymous; htpasswd (Basic); token (a Bearer challenge answered by a small token service
here, which signs the JWTs that distribution's token auth verifies, as Docker Hub's does).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .janitor import run_directory
from .ports import free_port
from .processes import die_with_parent, stop
from .waiting import wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
USER, PASSWORD = "dev", "s3cret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Issues distribution-style JWTs (ES256, x5c header) to clients with the right Basic credentials."""

    def __init__(self, directory: Path, service: str):
        self.service = service
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.bundle = directory / "token-issuer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.port = free_port()
        self.requests = 0
        service_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                service_self.requests += 1
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = query.get("scope", [""])[0].split(":")
                token = service_self.sign(scope[1] if len(scope) == 3 else "", query.get("service", [""])[0])
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.realm = f"http://127.0.0.1:{self.port}/token"

    def sign(self, repository: str, audience: str, actions: tuple[str, ...] = ("pull",)) -> str:
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "test-issuer", "sub": USER, "aud": audience, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": str(now), "access": [{"type": "repository", "name": repository, "actions": list(actions)}]}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self):
        self.server.shutdown()


class Registry:
    """`docker-registry serve` on a random loopback port. Always `stop()`."""

    def __init__(self, auth: str | None = None, address: str = "127.0.0.1"):
        """`address`: where it listens; "[::1]" for IPv6 loopback."""
        self.dir = run_directory("restart-process-registry-")
        self.port = free_port(address.strip("[]"))
        self.host = f"{address}:{self.port}"
        self.url = f"http://{self.host}"
        self.auth = auth
        self.token_service = None
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "test"},
        }
        if auth == "htpasswd":
            (self.dir / "htpasswd").write_bytes(USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)) + b"\n")
            config["auth"] = {"htpasswd": {"realm": "test", "path": str(self.dir / "htpasswd")}}
        elif auth == "token":
            self.token_service = TokenService(self.dir, service="test-registry")
            config["auth"] = {"token": {"realm": self.token_service.realm, "service": "test-registry",
                                        "issuer": "test-issuer", "rootcertbundle": str(self.token_service.bundle)}}
        (self.dir / "config.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
        self.log = open(self.dir / "registry.log", "wb")
        self.process = subprocess.Popen([shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve",
                                         str(self.dir / "config.yml")], stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_parent)
        wait_until(lambda: httpx.get(self.url + "/v2/", timeout=1).status_code in (200, 401), 20, interval=0.05,
                   what="the registry to answer", ignoring=(httpx.HTTPError,), process=self.process)
        self.http = httpx.Client(base_url=self.url, auth=self._auth_flow())

    def _auth_flow(self):
        if self.auth == "htpasswd":
            return (USER, PASSWORD)
        if self.auth == "token":
            return _PushToken(self.token_service)
        return None

    # --- pushing -------------------------------------------------------------------------------

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = self.http.post(f"/v2/{repository}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = self.http.put(f"{location}{separator}digest={digest}", content=data,
                             headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return digest

    def push_manifest(self, repository: str, reference: str, manifest: dict, media_type: str) -> str:
        body = json.dumps(manifest).encode()
        response = self.http.put(f"/v2/{repository}/manifests/{reference}", content=body,
                                 headers={"Content-Type": media_type})
        assert response.status_code == 201, response.text
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def push_image(self, repository: str, tag: str, entrypoint=None, cmd=None, arch: str = "amd64",
                   media_type: str = OCI_MANIFEST, stop_signal: str | None = None, env: list[str] | None = None) -> str:
        image_config = {"Entrypoint": entrypoint, "Cmd": cmd}
        if env is not None:
            image_config["Env"] = env
        if stop_signal:
            image_config["StopSignal"] = stop_signal
        config = json.dumps({"architecture": arch, "os": "linux", "config": image_config,
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layer = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # empty gzip
        config_type = ("application/vnd.oci.image.config.v1+json" if media_type == OCI_MANIFEST
                       else "application/vnd.docker.container.image.v1+json")
        layer_type = ("application/vnd.oci.image.layer.v1.tar+gzip" if media_type == OCI_MANIFEST
                      else "application/vnd.docker.image.rootfs.diff.tar.gzip")
        manifest = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": self.push_blob(repository, config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": self.push_blob(repository, layer), "size": len(layer)}],
        }
        return self.push_manifest(repository, tag, manifest, media_type)

    def push_index(self, repository: str, tag: str, images: dict[str, str], media_type: str = OCI_INDEX) -> str:
        """images: arch -> manifest digest (already pushed to this repository)."""
        entry_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
        manifests = []
        for arch, digest in images.items():
            size = len(self.http.get(f"/v2/{repository}/manifests/{digest}", headers={"Accept": entry_type}).content)
            manifests.append({"mediaType": entry_type, "digest": digest, "size": size,
                              "platform": {"os": "linux", "architecture": arch}})
        return self.push_manifest(repository, tag, {"schemaVersion": 2, "mediaType": media_type,
                                                    "manifests": manifests}, media_type)

    def tamper(self, digest: str, content: bytes) -> None:
        """Replace what the registry stores under `digest` (a manifest or a blob) with `content`, as a
        corrupted disk or a compromised storage backend would: distribution serves the new bytes and
        still names them by the old digest (Docker-Content-Digest), without checking."""
        algorithm, _, hexdigest = digest.partition(":")
        stored = self.dir / "data" / "docker" / "registry" / "v2" / "blobs" / algorithm / hexdigest[:2] / hexdigest / "data"
        assert stored.is_file(), f"{digest} is not stored in this registry"
        stored.write_bytes(content)

    def stop(self):
        self.http.close()
        stop(self.process)
        self.log.close()
        if self.token_service:
            self.token_service.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class _PushToken(httpx.Auth):
    """Pushing to the token-auth registry: get a push+pull token for the repository asked about."""

    def __init__(self, service: TokenService):
        self.service = service

    def auth_flow(self, request):
        response = yield request
        if response.status_code == 401:
            path = request.url.path.split("/")
            repository = "/".join(path[2:path.index("blobs") if "blobs" in path else path.index("manifests")])
            token = self.service.sign(repository, "test-registry", ("pull", "push"))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

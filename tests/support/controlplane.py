"""A real control plane for tests: etcd, kube-apiserver and kube-controller-manager on loopback.

Modelled on controller-runtime's envtest: random ports, generated certificates (serving, a
client CA with an admin certificate, a service-account signing key), RBAC authorization, the
ServiceAccount admission plugin off (no controller creates `default` service accounts).
Binaries are found the envtest way: TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD /
TEST_ASSET_KUBE_CONTROLLER_MANAGER, then $KUBEBUILDER_ASSETS/<name>, then the cache that
hack/build-control-plane.sh fills.
"""

from __future__ import annotations

import datetime
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from webhook.tls import issue_serving_certificate, new_ca, private_key_pem
from .binaries import find_binary
from .janitor import run_directory
from .ports import free_port
from .processes import die_with_parent, stop
from .waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)



class CertificateAuthority:
    """A tiny CA, as envtest's TinyCA: ECDSA, short-lived."""

    def __init__(self, name: str):
        self.cert, self.key = new_ca(name, datetime.timedelta(days=7))

    def serving(self, hosts: list[str]) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM) for `hosts`."""
        return issue_serving_certificate(self.cert, self.key, hosts, days=7)

    def client(self, user: str, groups: list[str]) -> tuple[bytes, bytes]:
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)] +
                            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups])
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return private_key_pem(key), pem(cert)


class ControlPlane:
    """Start with `start()`, always `stop()` (it kills every process it started)."""

    def __init__(self, with_controller_manager: bool = True, extra_args: dict[str, list[str]] | None = None):
        self.dir = run_directory("restart-process-apiserver-")
        self.with_controller_manager = with_controller_manager
        # More flags for a process, by name ("kube-apiserver", ...): the node tests need a few.
        self.extra_args = extra_args or {}
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.ca = CertificateAuthority("restart-process test CA")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.dir / "kubeconfig"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "ControlPlane":
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            if self.with_controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # One at a time, in reverse: kube-apiserver stopped together with etcd waits for it until
        # killed (15 s); in order, all of them are gone in about a second.
        for name, process in reversed(self.processes):
            stop(process, timeout=15)
            process.log.close()
        self.processes.clear()
        if not os.environ.get("KEEP_CONTROL_PLANE_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_of(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    # --- pieces ----------------------------------------------------------------------------

    def _write_pki(self) -> None:
        d = self.dir
        (d / "ca.crt").write_bytes(pem(self.ca.cert))
        key, cert = self.ca.serving(["localhost", "127.0.0.1"])
        (d / "apiserver.key").write_bytes(key)
        (d / "apiserver.crt").write_bytes(cert)
        key, cert = self.ca.client("admin", ["system:masters"])
        (d / "admin.key").write_bytes(key)
        (d / "admin.crt").write_bytes(cert)
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (d / "sa.key").write_bytes(private_key_pem(sa))
        (d / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": str(d / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(d / "admin.crt"),
                                                  "client-key": str(d / "admin.key")}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        # stop() ends each process; PR_SET_PDEATHSIG covers a test run that is killed outright.
        argv = [*argv, *self.extra_args.get(name, [])]
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        process.log = log
        self.processes.append((name, process))
        return process

    def _wait(self, name: str, process: subprocess.Popen, probe, timeout: float = 90) -> None:
        try:
            wait_until(probe, timeout, interval=0.2, what=f"{name} to be ready", ignoring=(OSError,), process=process)
        except AssertionError as error:
            raise RuntimeError(f"{error}:\n{self.log_of(name)[-3000:]}") from None

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        process = self._spawn("etcd", [
            str(find_binary("etcd")), "--name=default", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        self._wait("etcd", process, lambda: urllib.request.urlopen(self.etcd_url + "/health", timeout=1).status == 200)

    def _start_apiserver(self) -> None:
        d = self.dir
        process = self._spawn("kube-apiserver", [
            str(find_binary("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--cert-dir={d / 'apiserver-certs'}",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
        ])
        context = self.ssl_context()
        self._wait("kube-apiserver", process,
                   lambda: urllib.request.urlopen(self.url + "/readyz", context=context, timeout=2).status == 200)

    def _start_controller_manager(self) -> None:
        d = self.dir
        process = self._spawn("kube-controller-manager", [
            str(find_binary("kube-controller-manager")),
            f"--kubeconfig={self.kubeconfig}", f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false", "--controllers=deployment,replicaset,job",
            f"--secure-port={free_port()}", "--bind-address=127.0.0.1", f"--cert-dir={d / 'kcm-certs'}",
            f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
        ])
        # The controller manager has no readiness of its own to ask; it is ready enough once it runs.
        time.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(f"kube-controller-manager exited:\n{self.log_of('kube-controller-manager')[-3000:]}")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        context.load_cert_chain(str(self.dir / "admin.crt"), str(self.dir / "admin.key"))
        return context

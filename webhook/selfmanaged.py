"""Self-managed TLS: the webhook keeps its own CA, serving certificate and caBundle (a shell).

Zero dependencies for the user: no cert-manager, no Helm hook Jobs.
- The CA and serving certificate live in one Secret, created if absent. Replicas starting at
  once race to create it; the losers get 409 AlreadyExists and adopt the winner's, so all
  agree on one CA. Renewals go through `replace` with the read resourceVersion: a replica that
  loses that race (409 Conflict) adopts what won.
- The serving certificate is renewed when a third of its lifetime is left; the CA is replaced
  when less than the serving lifetime is left, and the old CA stays in the bundle until it
  expires, so clients never see a certificate they cannot verify.
- The MutatingWebhookConfiguration's caBundle is compared on every check and patched when it
  differs, which also repairs it after `helm upgrade` renders it empty.
- The certificate and key are written to files that the server's CertificateReloader watches.
- The Secret is owned by the MutatingWebhookConfiguration (a namespaced dependent may have a
  cluster-scoped owner): `helm uninstall` deletes the configuration, and the garbage collector the
  Secret that Helm never knew of. A Secret made before this, or re-made by hand, is adopted.

RBAC needed: secrets create, and get/update on this one Secret; get/patch on this one
MutatingWebhookConfiguration. Nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client
from kubernetes.client.rest import ApiException

from . import tls
from .tls import issue_serving_certificate

log = logging.getLogger("restart_process.selfmanaged")

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


@dataclass(frozen=True)
class Lifetimes:
    ca: datetime.timedelta = datetime.timedelta(days=3650)
    serving: datetime.timedelta = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Material:
    """What the Secret holds, PEM-encoded. `ca_bundle` may hold an old CA after the current one."""

    ca_bundle: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_secret(cls, secret) -> "Material | None":
        data = secret.data or {}
        if not all(k in data for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)):
            return None
        raw = {k: base64.b64decode(data[k]) for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)}
        return cls(raw[CA_CERT], raw[CA_KEY], raw[TLS_CERT], raw[TLS_KEY])

    def secret_data(self) -> dict[str, str]:
        raw = {CA_CERT: self.ca_bundle, CA_KEY: self.ca_key, TLS_CERT: self.cert, TLS_KEY: self.key}
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def service_hosts(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def new_ca(lifetimes: Lifetimes, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    # Unique per CA: during a rotation the old and the new one sit side by side in the bundle.
    return tls.new_ca(f"restart-process-webhook CA {now:%Y%m%dT%H%M%S} {os.urandom(4).hex()}", lifetimes.ca, now)


def renewed(current: Material | None, hosts: list[str], lifetimes: Lifetimes, now: datetime.datetime) -> Material | None:
    """The material to store, or None when `current` is good as it is (pure, given `now`)."""
    if current is not None:
        ca_chain = x509.load_pem_x509_certificates(current.ca_bundle)
        ca = ca_chain[0]
        serving = x509.load_pem_x509_certificate(current.cert)
        names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        ca_ok = ca.not_valid_after_utc - now > lifetimes.serving
        serving_ok = serving.not_valid_after_utc - now > lifetimes.serving / 3 and sorted(names) == sorted(hosts)
        if ca_ok and serving_ok:
            return None
        if ca_ok:
            ca_key = serialization.load_pem_private_key(current.ca_key, None)
            key, cert = issue_serving_certificate(ca, ca_key, hosts, _days(lifetimes.serving))
            return Material(current.ca_bundle, current.ca_key, cert, key)
        # A new CA; the old one stays trusted until it expires.
        still_valid = [c for c in ca_chain if c.not_valid_after_utc > now]
        ca_cert, ca_key = new_ca(lifetimes, now)
        key, cert = issue_serving_certificate(ca_cert, ca_key, hosts, _days(lifetimes.serving))
        bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [ca_cert, *still_valid])
        return Material(bundle, tls.private_key_pem(ca_key), cert, key)
    ca_cert, ca_key = new_ca(lifetimes, now)
    key, cert = issue_serving_certificate(ca_cert, ca_key, hosts, _days(lifetimes.serving))
    return Material(ca_cert.public_bytes(serialization.Encoding.PEM), tls.private_key_pem(ca_key), cert, key)


class SelfManagedTLS:
    def __init__(self, api: client.ApiClient, namespace: str, secret_name: str, webhook_configuration: str,
                 service_name: str, directory: Path, lifetimes: Lifetimes = Lifetimes()):
        self.core = client.CoreV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.namespace = namespace
        self.secret_name = secret_name
        self.webhook_configuration = webhook_configuration
        self.hosts = service_hosts(service_name, namespace)
        self.directory = directory
        self.lifetimes = lifetimes
        self.cert_file = directory / TLS_CERT
        self.key_file = directory / TLS_KEY

    def ensure(self) -> Material:
        """One pass: the Secret is valid and owned, the files match it, the caBundle matches it."""
        material = self._ensure_secret(self._owner())
        self._write_files(material)
        self._ensure_ca_bundle(material.ca_bundle)
        return material

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.ensure)
            except Exception:  # keep serving with what we have; the next pass tries again
                log.exception("self-managed TLS check failed")

    # --- the Secret ------------------------------------------------------------------------

    def _owner(self) -> client.V1OwnerReference:
        configuration = self.admission.read_mutating_webhook_configuration(self.webhook_configuration)
        return client.V1OwnerReference(api_version="admissionregistration.k8s.io/v1",
                                       kind="MutatingWebhookConfiguration", name=configuration.metadata.name,
                                       uid=configuration.metadata.uid)

    def _ensure_secret(self, owner: client.V1OwnerReference) -> Material:
        for _ in range(5):
            secret = self._read_secret()
            current = Material.from_secret(secret) if secret is not None else None
            now = datetime.datetime.now(datetime.timezone.utc)
            wanted = renewed(current, self.hosts, self.lifetimes, now)
            owned = secret is not None and any(ref.uid == owner.uid for ref in secret.metadata.owner_references or [])
            if wanted is None and owned:
                return current
            body = client.V1Secret(
                metadata=client.V1ObjectMeta(name=self.secret_name, namespace=self.namespace,
                                             labels={"app.kubernetes.io/managed-by": "restart-process-webhook"},
                                             owner_references=[owner]),
                type="Opaque", data=(wanted or current).secret_data())
            try:
                if secret is None:
                    self.core.create_namespaced_secret(self.namespace, body)
                    log.info("created TLS secret %s/%s", self.namespace, self.secret_name)
                else:
                    body.metadata.resource_version = secret.metadata.resource_version
                    self.core.replace_namespaced_secret(self.secret_name, self.namespace, body)
                    log.info("renewed the certificates in secret %s/%s" if wanted else
                             "adopted secret %s/%s for the webhook configuration", self.namespace, self.secret_name)
                return wanted or current
            except ApiException as error:
                if error.status != 409:  # AlreadyExists or Conflict: another replica won; adopt theirs
                    raise
                log.info("another replica wrote secret %s/%s first; adopting it", self.namespace, self.secret_name)
        raise RuntimeError(f"secret {self.namespace}/{self.secret_name} kept changing under us")

    def _read_secret(self):
        try:
            return self.core.read_namespaced_secret(self.secret_name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    # --- files and caBundle ----------------------------------------------------------------

    def _write_files(self, material: Material) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, data, mode in ((self.key_file, material.key, 0o600), (self.cert_file, material.cert, 0o644)):
            if not path.exists() or path.read_bytes() != data:
                tls.write_atomically(path, data, mode)

    def _ensure_ca_bundle(self, ca_bundle: bytes) -> None:
        wanted = base64.b64encode(ca_bundle).decode()
        for _ in range(5):
            configuration = self.admission.read_mutating_webhook_configuration(self.webhook_configuration)
            patch = [
                {"op": "replace" if w.client_config.ca_bundle is not None else "add",
                 "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted}
                for i, w in enumerate(configuration.webhooks or [])
                if w.client_config.ca_bundle != wanted
            ]
            if not patch:
                return
            # The test op makes the patch fail if anyone changed the configuration since we read
            # it (another replica, a helm upgrade); then read again and decide again.
            guard = [{"op": "test", "path": "/metadata/resourceVersion",
                      "value": configuration.metadata.resource_version}]
            try:
                self.admission.patch_mutating_webhook_configuration(self.webhook_configuration, guard + patch)
                log.info("patched caBundle of %s", self.webhook_configuration)
                return
            except ApiException as error:
                if error.status not in (409, 422):
                    raise
        raise RuntimeError(f"{self.webhook_configuration} kept changing under us")

def _days(delta: datetime.timedelta) -> float:
    return delta.total_seconds() / 86400

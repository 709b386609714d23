"""Serving certificates: generate a throwaway CA for local runs, and reload files that change.

uvicorn builds its SSLContext once. Loading a new chain into that same context makes every
*new* handshake use it, while open connections keep theirs: rotation without a restart and
without dropping a request. Files are compared by (device, inode, size, mtime) of their
resolved targets, so a Kubernetes Secret volume's `..data` symlink swap is seen too.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("restart_process.tls")


@dataclass(frozen=True)
class GeneratedCertificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def generate_self_signed(directory: Path, hosts: list[str], days: int = 365) -> GeneratedCertificates:
    """A CA and a serving certificate for `hosts` (DNS names or IP addresses), as PEM files."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = new_ca("restart-process-webhook local CA", datetime.timedelta(days=days))
    key, cert = issue_serving_certificate(ca_cert, ca_key, hosts, days)
    files = GeneratedCertificates(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    write_atomically(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_atomically(files.cert_file, cert, 0o644)
    write_atomically(files.key_file, key, 0o600)
    return files


def new_ca(common_name: str, lifetime: datetime.timedelta,
           now: datetime.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA certificate and its key (ECDSA P-256), valid from five minutes ago for `lifetime`."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def private_key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def issue_serving_certificate(ca_cert, ca_key, hosts: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """A serving key and certificate (PEM) for `hosts`, signed by the given CA."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Names the signing key, so verifiers pick the right CA when a bundle holds two.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


class CertificateReloader:
    """Keeps `context` serving whatever certificate and key the two files hold now."""

    def __init__(self, context: ssl.SSLContext, cert_file: str, key_file: str):
        self.context = context
        self.cert_file = cert_file
        self.key_file = key_file
        self._seen = self._fingerprint()
        self.loaded = True  # uvicorn loaded the chain when it built the context

    def _fingerprint(self) -> tuple:
        stats = [os.stat(path) for path in (self.cert_file, self.key_file)]
        return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def check(self) -> bool:
        """Reload if the files changed. A half-written pair keeps the old certificate in use."""
        try:
            current = self._fingerprint()
        except OSError as error:
            log.warning("cannot stat certificate files: %s", error)
            return False
        if current == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            # Cert and key are often written one after the other; the next check will see both.
            log.warning("certificate files changed but do not load yet: %s", error)
            return False
        self._seen = current
        log.info("reloaded serving certificate from %s", self.cert_file)
        return True

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Readers see the old file or the new one, never half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)

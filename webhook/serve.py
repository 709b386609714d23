"""`restart-process serve`: the admission webhook over HTTPS (a shell that wires the others).

TLS (given files, a generated certificate for local runs, or self-managed in a Secret), the
image lookup, what the delivery choice knows of the cluster, the FastAPI app and its background
tasks (certificate reloads, self-managed renewals, local-registry discovery, the cluster's
facts), all on one uvicorn server with a bounded shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

from . import __version__, logs
from .app import create_app
from .clusterfacts import ClusterWatch, FixedFacts
from .config import ServeSettings
from .delivery import ClusterFacts, Delivery
from .lookup import ImageLookup
from .shutdown import DrainingServer, close_connections_while
from .tls import CertificateReloader, generate_self_signed

SHUTDOWN_SECONDS = 5
log = logging.getLogger("restart_process")


def run(settings: ServeSettings) -> int:
    logs.configure(settings.log_level)
    background = []  # coroutines to run beside the server
    try:
        files = _certificate_files(settings, background)
        lookup = _image_lookup(settings, background)
        cluster = _cluster_facts(settings, background)
    except _CannotStart as error:
        print(f"restart-process serve: {error}", file=sys.stderr)
        return 1
    cert_file, key_file = files

    reloader: CertificateReloader | None = None
    server: DrainingServer | None = None
    app = create_app(settings.injector, ready=lambda: _readiness(reloader, server), lookup=lookup, cluster=cluster)
    server_config = uvicorn.Config(
        close_connections_while(lambda: server is not None and server.draining, app),
        host=settings.host,
        port=settings.port,
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
        log_config=None,  # keep our JSON logging
        access_log=False,  # one structured line per admission says more
        server_header=False,
        # An idle keep-alive TLS connection (the API server keeps them) waits for the peer's
        # close_notify on shutdown; without a bound, a rollout stalls until SIGKILL.
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    try:
        server_config.load()  # builds the SSLContext now, so the reloader can hold on to it
    except (OSError, ValueError) as error:
        print(f"restart-process serve: cannot load the serving certificate: {error}", file=sys.stderr)
        return 1
    reloader = CertificateReloader(server_config.ssl, cert_file, key_file)
    log.info("serving", extra={"fields": {"url": f"https://{settings.host}:{settings.port}/mutate",
                                          "version": __version__}})
    background.append(reloader.run(settings.tls.reload_interval))
    server = DrainingServer(server_config, settings.shutdown_delay)
    asyncio.run(_serve(server, background, lookup))
    return 0


def _readiness(reloader: CertificateReloader | None, server: DrainingServer | None) -> str | None:
    """Why the server is not ready (a 503 from /readyz), or None."""
    if reloader is None or not reloader.loaded:
        return "no serving certificate loaded"
    if server is not None and server.draining:
        return "shutting down"
    return None


class _CannotStart(Exception):
    pass


async def _serve(server, background: list, lookup) -> None:
    tasks = [asyncio.create_task(coroutine) for coroutine in background]
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()
        if lookup is not None:
            await lookup.close()


def _certificate_files(settings: ServeSettings, background: list) -> tuple[str, str]:
    tls = settings.tls
    if tls.mode == "self-managed":
        manager = _self_managed_tls(settings)
        background.append(manager.run(tls.check_interval))
        return str(manager.cert_file), str(manager.key_file)
    if tls.cert_file:
        return tls.cert_file, tls.key_file
    directory = Path(tls.directory) if tls.directory else Path(tempfile.mkdtemp(prefix="restart-process-tls-"))
    generated = generate_self_signed(directory, ["localhost", "127.0.0.1", "::1"])
    log.info(
        "no --tls-cert-file given: generated a self-signed certificate for localhost",
        extra={"fields": {"ca_file": str(generated.ca_file), "cert_file": str(generated.cert_file)}},
    )
    return str(generated.cert_file), str(generated.key_file)


def _image_lookup(settings: ServeSettings, background: list) -> ImageLookup | None:
    """Reading ENTRYPOINT/CMD from registries for pods without a command (None: switched off)."""
    lookup_settings = settings.lookup
    if not lookup_settings.enabled:
        return None
    credentials = None
    if lookup_settings.credentials:
        from .pullsecrets import PullSecrets

        credentials = PullSecrets(_api_client(settings))
    lookup = ImageLookup(lookup_settings, credentials=credentials)
    if lookup_settings.discover_local_registry:
        from .localregistry import keep_discovering

        background.append(keep_discovering(_api_client(settings), lookup.registry.aliases,
                                           lookup_settings.aliases, 60.0))
    return lookup


def _cluster_facts(settings: ServeSettings, background: list):
    """What the delivery choice knows of the cluster: watched, unless the setting never needs it.

    With --delivery=init-container nothing is read, and a pod that asks for image-volume gets the
    init container and a warning (the gate cannot be checked). With no API server to ask (run
    outside a cluster without --kubeconfig) the webhook is as offline as `inject`: None."""
    delivery = settings.injector.delivery
    if delivery == Delivery.INIT_CONTAINER:
        return FixedFacts(ClusterFacts(unread="the webhook does not read the cluster (--delivery=init-container)"))
    try:
        api = _api_client(settings)
    except _CannotStart as error:
        log.warning("the cluster cannot be read: delivery as offline (auto: the init container; image-volume: "
                    "the image volume, unchecked)", extra={"fields": {"delivery": delivery, "error": str(error)}})
        return None
    watch = ClusterWatch(api)
    background.append(watch.run())
    return watch


def _api_client(settings: ServeSettings):
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    try:
        if settings.kubeconfig:
            return kube_config.new_client_from_config(config_file=settings.kubeconfig)
        kube_config.load_incluster_config()
        return kube_client.ApiClient()
    except Exception as error:  # a kubeconfig that does not load, no in-cluster configuration
        raise _CannotStart(f"cannot talk to the API server: {error}") from None


def _self_managed_tls(settings: ServeSettings):
    """Create or adopt the TLS Secret and patch the caBundle before serving; retry for a minute."""
    from .selfmanaged import SelfManagedTLS

    tls = settings.tls
    api = _api_client(settings)
    namespace = tls.namespace or _own_namespace()
    if not namespace:
        raise _CannotStart("--namespace is needed outside a pod")
    directory = Path(tls.directory) if tls.directory else Path(tempfile.mkdtemp(prefix="restart-process-tls-"))
    manager = SelfManagedTLS(api, namespace, tls.secret_name, tls.webhook_configuration_name,
                             tls.service_name, directory)
    deadline = time.monotonic() + 60
    while True:
        try:
            manager.ensure()
            return manager
        except Exception as error:
            if time.monotonic() > deadline:
                log.error("self-managed TLS could not be set up", exc_info=error)
                raise _CannotStart("self-managed TLS could not be set up; see the log") from None
            log.warning("self-managed TLS not ready yet, retrying", extra={"fields": {"error": str(error)}})
            time.sleep(2)


def _own_namespace() -> str | None:
    """The pod's namespace: POD_NAMESPACE (downward API), else the service account's namespace file."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    except OSError:
        return None

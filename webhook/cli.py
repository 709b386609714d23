"""`restart-process serve` and `restart-process inject`: thin shells around the pure mutation.

Every flag can also be given as an environment variable `RESTART_PROCESS_<FLAG>`
(`--wrapper-image` -> `RESTART_PROCESS_WRAPPER_IMAGE`); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

import yaml

from . import __version__, logs
from .config import DEFAULT_WRAPPER_IMAGE, InjectorConfig
from .contract import DEFAULT_PREFIX
from .manifests import transform_document
from .mutate import mutate_pod

ENV_PREFIX = "RESTART_PROCESS_"
SHUTDOWN_SECONDS = 5
log = logging.getLogger("restart_process")


class InputError(Exception):
    """Input that cannot be read as Kubernetes documents; the message says where."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return 2
    return args.run(args, parser)


# --- serve ---------------------------------------------------------------------------------


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import uvicorn  # imported here so `inject` starts fast

    from .app import create_app
    from .tls import CertificateReloader, generate_self_signed

    logs.configure(args.log_level)
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        parser.error("--tls-cert-file and --tls-key-file go together")
    cert_file, key_file = args.tls_cert_file, args.tls_key_file
    manager = None
    if args.tls_mode not in ("files", "self-managed"):
        parser.error(f"--tls-mode: expected files or self-managed, got {args.tls_mode!r}")
    if args.tls_mode == "self-managed":
        if cert_file:
            parser.error("--tls-mode=self-managed writes its own certificate; drop --tls-cert-file")
        manager = _self_managed_tls(args)
        if manager is None:
            return 1
        cert_file, key_file = str(manager.cert_file), str(manager.key_file)
    elif not cert_file:
        directory = Path(args.tls_dir) if args.tls_dir else Path(tempfile.mkdtemp(prefix="restart-process-tls-"))
        generated = generate_self_signed(directory, ["localhost", "127.0.0.1", "::1"])
        cert_file, key_file = str(generated.cert_file), str(generated.key_file)
        log.info(
            "no --tls-cert-file given: generated a self-signed certificate for localhost",
            extra={"fields": {"ca_file": str(generated.ca_file), "cert_file": cert_file}},
        )

    reloader: CertificateReloader | None = None
    config = _injector_config(args)
    background = []  # coroutines to run beside the server
    try:
        lookup = _image_lookup(args, config, background)
    except Exception as error:  # a kubeconfig that does not load, no in-cluster configuration
        print(f"restart-process serve: cannot talk to the API server: {error}", file=sys.stderr)
        return 1
    app = create_app(config, ready=lambda: reloader is not None and reloader.loaded, lookup=lookup)
    server_config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
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
    log.info(
        "serving",
        extra={"fields": {"url": f"https://{args.host}:{args.port}/mutate", "version": __version__}},
    )
    background.append(reloader.run(args.tls_reload_interval))
    if manager is not None:
        background.append(manager.run(args.tls_check_interval))
    asyncio.run(_serve(uvicorn.Server(server_config), background))
    return 0


async def _serve(server, background: list) -> None:
    tasks = [asyncio.create_task(coroutine) for coroutine in background]
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()


def _image_lookup(args: argparse.Namespace, config: InjectorConfig, background: list):
    """Reading ENTRYPOINT/CMD from registries for pods without a command (None: switched off)."""
    if args.no_registry_lookup:
        return None
    from .lookup import ImageLookup
    from .registry import RegistryClient, Resolver

    credentials = None
    if args.registry_credentials:
        from .pullsecrets import PullSecrets

        credentials = PullSecrets(_api_client(args))
    registry = RegistryClient(insecure=_insecure(args), aliases=args.registry_aliases)
    if args.discover_local_registry:
        from .localregistry import keep_discovering

        background.append(keep_discovering(_api_client(args), registry.aliases, args.registry_aliases, 60.0))
    return ImageLookup(config, Resolver(registry, deadline=args.registry_timeout), args.default_arch, credentials)


def _api_client(args: argparse.Namespace):
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    if args.kubeconfig:
        return kube_config.new_client_from_config(config_file=args.kubeconfig)
    kube_config.load_incluster_config()
    return kube_client.ApiClient()


def _insecure(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(p.strip() for p in args.insecure_registries.split(",") if p.strip())


def _self_managed_tls(args: argparse.Namespace):
    """Create or adopt the TLS Secret and patch the caBundle before serving; retry for a minute."""
    import time

    from .selfmanaged import SelfManagedTLS

    api = _api_client(args)
    namespace = args.namespace or _own_namespace()
    if not namespace:
        print("restart-process serve: --namespace is needed outside a pod", file=sys.stderr)
        return None
    directory = Path(args.tls_dir) if args.tls_dir else Path(tempfile.mkdtemp(prefix="restart-process-tls-"))
    manager = SelfManagedTLS(api, namespace, args.tls_secret_name, args.webhook_configuration_name,
                             args.service_name, directory)
    deadline = time.monotonic() + 60
    while True:
        try:
            manager.ensure()
            return manager
        except Exception as error:
            if time.monotonic() > deadline:
                log.error("self-managed TLS could not be set up", exc_info=error)
                return None
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


# --- inject --------------------------------------------------------------------------------


def inject(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config = _injector_config(args)
    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        documents = load_documents(text)
    except (OSError, UnicodeDecodeError, InputError) as error:
        print(f"restart-process inject: {error}", file=sys.stderr)
        return 1

    try:
        known = _read_image_configs(args.image_configs) if args.image_configs else {}
    except (OSError, ValueError) as error:
        print(f"restart-process inject: --image-configs: {error}", file=sys.stderr)
        return 1
    configs = _look_up_images(documents, config, known, args)

    output = []
    for index, document in enumerate(documents, start=1):
        mutated, results = transform_document(
            document, lambda pod, ns: mutate_pod(pod, config, ns, _for_pod(configs, pod, args.default_arch)))
        for label, mutation in results:
            for warning in mutation.warnings:
                print(f"{warning} [document {index}, {label}]", file=sys.stderr)
        output.append(mutated)
    sys.stdout.write(dump_documents(output))
    return 0


def _read_image_configs(path: str) -> dict:
    """{"image": {"Entrypoint": [...], "Cmd": [...]}}, the keys `docker inspect` shows under Config."""
    from .images import ImageConfig

    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object of image -> {Entrypoint, Cmd}")

    def words(value) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(w, str) for w in value))

    configs = {}
    for image, config in raw.items():
        if not isinstance(config, dict) or not words(config.get("Entrypoint")) or not words(config.get("Cmd")):
            raise ValueError(f'"{image}": expected {{"Entrypoint": [...], "Cmd": [...]}} (lists of strings or null)')
        configs[image] = ImageConfig(tuple(config.get("Entrypoint") or ()), tuple(config.get("Cmd") or ()))
    return configs


def _look_up_images(documents: list[dict], config: InjectorConfig, known: dict, args) -> dict:
    """(image, arch) -> ImageConfig or LookupFailure, for every pod in the documents that needs one."""
    from .mutate import Mutation, SKIPPED, images_to_look_up, node_arch

    wanted: set[tuple[str, str]] = set()

    def collect(pod, namespace):
        arch = node_arch(pod) or args.default_arch
        wanted.update((image, arch) for image in images_to_look_up(pod, config, namespace))
        return Mutation(pod, SKIPPED)

    for document in documents:
        transform_document(document, collect)
    found = {(image, arch): known[image] for image, arch in wanted if image in known}
    missing = wanted - set(found)
    if missing and not args.no_registry_lookup:
        from .registry import RegistryClient, Resolver

        async def run():
            client = RegistryClient(insecure=_insecure(args), aliases=args.registry_aliases)
            try:
                resolver = Resolver(client, deadline=args.registry_timeout)
                for arch in {a for _, a in missing}:
                    results = await resolver.resolve([i for i, a in missing if a == arch], arch)
                    found.update({(image, arch): value for image, value in results.items()})
            finally:
                await client.close()

        asyncio.run(run())
    return found


def _for_pod(configs: dict, pod: dict, default_arch: str) -> dict | None:
    from .mutate import node_arch

    arch = node_arch(pod) or default_arch
    return {image: value for (image, a), value in configs.items() if a == arch} or None


def load_documents(text: str) -> list[dict]:
    """Parse JSON or (multi-document) YAML into a list of objects; errors say where."""
    if text.lstrip().startswith("{"):
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError as error:
            raise InputError(f"document 1, line {error.lineno}, column {error.colno}: {error.msg}") from None
    else:
        documents = []
        try:
            for document in yaml.safe_load_all(text):
                documents.append(document)
        except yaml.YAMLError as error:
            where = f"document {len(documents) + 1}"
            mark = getattr(error, "problem_mark", None)
            if mark is not None:
                where += f", line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(error, "problem", None) or str(error)
            raise InputError(f"{where}: {problem}") from None
    objects = []
    for index, document in enumerate(documents, start=1):
        if document is None:  # an empty document between two `---`
            continue
        if not isinstance(document, dict):
            raise InputError(f"document {index}: expected a Kubernetes object (a mapping), got {type(document).__name__}")
        objects.append(document)
    return objects


def dump_documents(documents: list[dict]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, width=1 << 16, explicit_start=len(documents) > 1)


# --- flags ---------------------------------------------------------------------------------


def _injector_config(args: argparse.Namespace) -> InjectorConfig:
    excluded = frozenset(n.strip() for n in args.excluded_namespaces.split(",") if n.strip())
    return InjectorConfig(
        wrapper_image=args.wrapper_image,
        wrapper_image_pull_policy=args.wrapper_image_pull_policy,
        annotation_prefix=args.annotation_prefix.rstrip("/"),
        excluded_namespaces=excluded,
        init_resources=args.init_resources,
        volume_size_limit=args.volume_size_limit,
    )


def _aliases(text: str) -> dict:
    """--registry-aliases localhost:5001=kind-registry:5000,..."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if not all("=" in p and all(p.split("=", 1)) for p in pairs):
        raise argparse.ArgumentTypeError("expected FROM=TO[,FROM=TO...]")
    return dict(p.split("=", 1) for p in pairs)


def _resources(text: str) -> dict:
    """--init-resources: a JSON object like a container's `resources`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict) or not set(value) <= {"requests", "limits"}:
        raise argparse.ArgumentTypeError('expected {"requests": {...}, "limits": {...}}')
    return value


def _flag(parser: argparse.ArgumentParser, name: str, default, help: str, type=str) -> None:
    """A `--name` flag whose default comes from RESTART_PROCESS_<NAME> when that is set."""
    variable = ENV_PREFIX + name.upper().replace("-", "_")
    value = os.environ.get(variable)
    parser.add_argument(
        f"--{name}",
        type=type,
        default=type(value) if value is not None else default,
        help=f"{help} (env {variable}; default: %(default)s)",
    )


def _switch(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """An on/off `--name` flag, also on when RESTART_PROCESS_<NAME> is true/1/yes."""
    variable = ENV_PREFIX + name.upper().replace("-", "_")
    on = os.environ.get(variable, "").lower() in ("1", "true", "yes")
    parser.add_argument(f"--{name}", action="store_true", default=on, help=f"{help} (env {variable})")


def _host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(machine, machine)


def _add_registry_flags(parser: argparse.ArgumentParser) -> None:
    from .registry import DEFAULT_INSECURE

    _switch(parser, "no-registry-lookup", "never read ENTRYPOINT/CMD from image registries")
    _flag(parser, "registry-timeout", 2.0, "seconds for all registry lookups of one pod", type=float)
    _flag(parser, "insecure-registries", ",".join(DEFAULT_INSECURE),
          "comma-separated host[:port] patterns reached over plain HTTP")
    _flag(parser, "default-arch", _host_arch(), "architecture for image indexes when a pod has no kubernetes.io/arch nodeSelector")
    _flag(parser, "registry-aliases", {}, "comma-separated FROM=TO: reach registry FROM (as images name it) at TO",
          type=_aliases)


def _add_injection_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "wrapper-image", DEFAULT_WRAPPER_IMAGE, "image of the init container that installs the wrapper")
    _flag(parser, "wrapper-image-pull-policy", "IfNotPresent", "imagePullPolicy of that init container")
    _flag(parser, "annotation-prefix", DEFAULT_PREFIX, "annotation prefix (the part before the /)")
    _flag(parser, "excluded-namespaces", "", "comma-separated namespaces never mutated, besides kube-system and kube-public")
    defaults = InjectorConfig()
    _flag(parser, "init-resources", json.dumps(defaults.init_resources), "resources of the injected init container, as JSON",
          type=_resources)
    _flag(parser, "volume-size-limit", defaults.volume_size_limit, "sizeLimit of the injected emptyDir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restart-process",
        description="Inject a restart wrapper into Kubernetes pods that opt in with restart-process.dev/* annotations.",
    )
    parser.add_argument("--version", action="version", version=f"restart-process {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="run the mutating admission webhook (HTTPS)")
    _flag(serve_parser, "host", "0.0.0.0", "address to listen on")
    _flag(serve_parser, "port", 8443, "port to listen on", type=int)
    _flag(serve_parser, "tls-cert-file", None, "serving certificate (PEM); re-read when it changes on disk")
    _flag(serve_parser, "tls-key-file", None, "serving key (PEM)")
    _flag(serve_parser, "tls-dir", None, "where to write generated certificates (default: a new temporary directory)")
    _flag(serve_parser, "tls-reload-interval", 5.0, "seconds between checks of the certificate files", type=float)
    _flag(serve_parser, "tls-mode", "files", "files (--tls-cert-file, or a generated one for localhost) or "
          "self-managed (a CA and certificate in a Secret, caBundle patched)")
    _flag(serve_parser, "tls-secret-name", "restart-process-webhook-tls", "self-managed: the Secret holding CA and certificate")
    _flag(serve_parser, "webhook-configuration-name", "restart-process-webhook",
          "self-managed: the MutatingWebhookConfiguration whose caBundle to keep current")
    _flag(serve_parser, "service-name", "restart-process-webhook", "self-managed: the Service the certificate is for")
    _flag(serve_parser, "namespace", None, "self-managed: our namespace (default: POD_NAMESPACE, or the pod's own)")
    _flag(serve_parser, "kubeconfig", None, "self-managed: kubeconfig file (default: in-cluster configuration)")
    _flag(serve_parser, "tls-check-interval", 30.0,
          "self-managed: seconds between checks of Secret, expiry and caBundle", type=float)
    _flag(serve_parser, "log-level", "info", "debug, info, warning or error")
    _add_injection_flags(serve_parser)
    _add_registry_flags(serve_parser)
    _switch(serve_parser, "discover-local-registry",
            "alias the cluster's local dev registry as kube-public/local-registry-hosting (KEP-1755) describes it")
    _switch(serve_parser, "registry-credentials",
            "use the pod's imagePullSecrets (and its service account's) for registry lookups; needs RBAC to read Secrets")
    serve_parser.set_defaults(run=serve)

    inject_parser = commands.add_parser(
        "inject", help="inject into manifests offline: YAML/JSON in, YAML out (like istioctl kube-inject)"
    )
    inject_parser.add_argument("-f", "--filename", required=True, help="manifest file, or - for standard input")
    _add_injection_flags(inject_parser)
    _add_registry_flags(inject_parser)
    inject_parser.add_argument("--image-configs", help="JSON file of image -> {Entrypoint, Cmd}, used before any registry")
    inject_parser.set_defaults(run=inject)
    return parser


if __name__ == "__main__":
    sys.exit(main())

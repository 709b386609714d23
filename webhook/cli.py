"""The command line: flags and environment variables in, typed settings out, then `serve` or `inject`.

Every flag can also be given as an environment variable `RESTART_PROCESS_<FLAG>`
(`--wrapper-image` -> `RESTART_PROCESS_WRAPPER_IMAGE`); a flag on the command line wins.
Only the chosen command's module is imported, so `inject` never loads the server's stack.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from . import __version__
from .config import (
    DEFAULT_INSECURE_REGISTRIES,
    DEFAULT_WRAPPER_IMAGE,
    InjectorConfig,
    InjectSettings,
    LookupSettings,
    ServeSettings,
    TLSSettings,
)
from .contract import DEFAULT_PREFIX, InvalidValue, parse_delivery, parse_exit_policy, parse_liveness_probe

ENV_PREFIX = "RESTART_PROCESS_"
TLS_MODES = ("files", "self-managed")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from . import serve

        return serve.run(serve_settings(args, parser))
    if args.command == "inject":
        from . import inject

        return inject.run(inject_settings(args))
    if args.command == "self-test":
        from . import selftest

        return selftest.run(args.webhook_configuration, args.webhook_namespace)
    parser.print_usage(sys.stderr)
    return 2


def serve_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeSettings:
    """Checks that span flags are usage errors (exit 2), like argparse's own."""
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        parser.error("--tls-cert-file and --tls-key-file go together")
    if args.tls_mode not in TLS_MODES:
        parser.error(f"--tls-mode: expected files or self-managed, got {args.tls_mode!r}")
    if args.tls_mode == "self-managed" and args.tls_cert_file:
        parser.error("--tls-mode=self-managed writes its own certificate; drop --tls-cert-file")
    return ServeSettings(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        shutdown_delay=args.shutdown_delay,
        kubeconfig=args.kubeconfig,
        tls=TLSSettings(
            mode=args.tls_mode,
            cert_file=args.tls_cert_file,
            key_file=args.tls_key_file,
            directory=args.tls_dir,
            reload_interval=args.tls_reload_interval,
            secret_name=args.tls_secret_name,
            webhook_configuration_name=args.webhook_configuration_name,
            service_name=args.service_name,
            namespace=args.namespace,
            check_interval=args.tls_check_interval,
        ),
        injector=_injector_config(args),
        lookup=_lookup_settings(args, credentials=args.registry_credentials,
                                discover_local_registry=args.discover_local_registry),
    )


def inject_settings(args: argparse.Namespace) -> InjectSettings:
    return InjectSettings(filename=args.filename, image_configs_file=args.image_configs,
                          injector=_injector_config(args), lookup=_lookup_settings(args))


# --- flags ---------------------------------------------------------------------------------


def _lookup_settings(args: argparse.Namespace, credentials: bool = False,
                     discover_local_registry: bool = False) -> LookupSettings:
    return LookupSettings(
        enabled=not args.no_registry_lookup,
        timeout=args.registry_timeout,
        insecure=tuple(p.strip() for p in args.insecure_registries.split(",") if p.strip()),
        aliases=args.registry_aliases,
        default_arch=args.default_arch,
        credentials=credentials,
        discover_local_registry=discover_local_registry,
    )


def _injector_config(args: argparse.Namespace) -> InjectorConfig:
    excluded = frozenset(n.strip() for n in args.excluded_namespaces.split(",") if n.strip())
    return InjectorConfig(
        wrapper_image=args.wrapper_image,
        wrapper_image_pull_policy=args.wrapper_image_pull_policy,
        annotation_prefix=args.annotation_prefix.rstrip("/"),
        excluded_namespaces=excluded,
        init_resources=args.init_resources,
        volume_size_limit=args.volume_size_limit,
        default_exit_policy=args.default_exit_policy,
        default_liveness_probe=args.default_liveness_probe,
        delivery=args.delivery,
    )


def _aliases(text: str) -> dict:
    """--registry-aliases localhost:5001=kind-registry:5000,..."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if not all("=" in p and all(p.split("=", 1)) for p in pairs):
        raise argparse.ArgumentTypeError("expected FROM=TO[,FROM=TO...]")
    return dict(p.split("=", 1) for p in pairs)


def _choice(parse):
    """An argparse type from one of the contract's parsers, so flags and annotations accept the same values."""
    def checked(text: str) -> str:
        try:
            return parse(text)
        except InvalidValue as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    checked.__name__ = parse.__name__.removeprefix("parse_").replace("_", " ")
    return checked


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0 to 3600 seconds, got {text!r}")
    return value


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
    _switch(parser, "no-registry-lookup", "never read image configs (ENTRYPOINT/CMD, PATH) from registries")
    _flag(parser, "registry-timeout", 2.0, "seconds for all lookups of one pod (serve: reading its pull secrets, "
          "tokens, manifests and configs) or of one run (inject), together", type=float)
    _flag(parser, "insecure-registries", ",".join(DEFAULT_INSECURE_REGISTRIES),
          "comma-separated host[:port] patterns reached over plain HTTP, each matched against the whole "
          "host[:port]: * is any run of characters (localhost:* is any port); every other character is itself, "
          "brackets included ([::1]:* is IPv6 loopback), letters in either case")
    _flag(parser, "default-arch", _host_arch(), "architecture for image indexes when a pod has no kubernetes.io/arch nodeSelector")
    _flag(parser, "registry-aliases", {}, "comma-separated FROM=TO: reach registry FROM (as images name it) at TO",
          type=_aliases)


def _add_injection_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "wrapper-image", DEFAULT_WRAPPER_IMAGE,
          "the wrapper image: of the init container that installs the wrapper, or mounted as an image volume")
    _flag(parser, "wrapper-image-pull-policy", "IfNotPresent", "pull policy of that init container or image volume")
    _flag(parser, "annotation-prefix", DEFAULT_PREFIX, "annotation prefix (the part before the /)")
    _flag(parser, "excluded-namespaces", "", "comma-separated namespaces never mutated, besides kube-system and kube-public")
    defaults = InjectorConfig()
    _flag(parser, "init-resources", json.dumps(defaults.init_resources), "resources of the injected init container, as JSON",
          type=_resources)
    _flag(parser, "volume-size-limit", defaults.volume_size_limit, "sizeLimit of the injected emptyDir")
    _flag(parser, "default-exit-policy", None, "exit policy for pods that set none: rerun, restart or continue "
          "(default: the wrapper's own, rerun)", type=_choice(parse_exit_policy))
    _flag(parser, "default-liveness-probe", defaults.default_liveness_probe,
          "what to do with a wrapped container's livenessProbe when the pod does not say: keep (with a warning), "
          "remove or relax", type=_choice(parse_liveness_probe))
    _flag(parser, "delivery", defaults.delivery, "how the wrapper reaches pods that do not say: auto (an image volume "
          "where the cluster takes one, else the init container; inject: the init container), image-volume or "
          "init-container", type=_choice(parse_delivery))


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
    _flag(serve_parser, "kubeconfig", None, "kubeconfig file for the API server, when one is needed (self-managed TLS, "
          "registry credentials or local-registry discovery, delivery auto or image-volume; default: in-cluster "
          "configuration)")
    _flag(serve_parser, "tls-check-interval", 30.0,
          "self-managed: seconds between checks of Secret, expiry and caBundle", type=float)
    _flag(serve_parser, "log-level", "info", "debug, info, warning or error")
    _flag(serve_parser, "shutdown-delay", ServeSettings().shutdown_delay,
          "seconds to keep serving after SIGTERM -- not ready, asking clients to close their connections -- "
          "before stopping, so that admissions move to other replicas instead of failing open (0: stop at once)",
          type=_seconds)
    _add_injection_flags(serve_parser)
    _add_registry_flags(serve_parser)
    _switch(serve_parser, "discover-local-registry",
            "alias the cluster's local dev registry as kube-public/local-registry-hosting (KEP-1755) describes it")
    _switch(serve_parser, "registry-credentials",
            "use the pod's imagePullSecrets (and its service account's) for registry lookups; needs RBAC to read Secrets")

    inject_parser = commands.add_parser(
        "inject", help="inject into manifests offline: YAML/JSON in, YAML out (like istioctl kube-inject)"
    )
    inject_parser.add_argument("-f", "--filename", required=True, help="manifest file, or - for standard input")
    _add_injection_flags(inject_parser)
    _add_registry_flags(inject_parser)
    inject_parser.add_argument("--image-configs", help="JSON file of image -> {Entrypoint, Cmd, StopSignal, Env}, used before any registry")

    test_parser = commands.add_parser(
        "self-test", help="in a pod that opted in: exit 0 if the webhook wrapped it, else 1 and what to check "
                          "(the chart's `helm test`)")
    test_parser.add_argument("--webhook-configuration", default="restart-process-webhook",
                             help="the MutatingWebhookConfiguration to name in the answer")
    test_parser.add_argument("--webhook-namespace", default="restart-process-system",
                             help="where the webhook runs, to name in the answer")
    return parser


if __name__ == "__main__":
    sys.exit(main())

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
    if not cert_file:
        directory = Path(args.tls_dir) if args.tls_dir else Path(tempfile.mkdtemp(prefix="restart-process-tls-"))
        generated = generate_self_signed(directory, ["localhost", "127.0.0.1", "::1"])
        cert_file, key_file = str(generated.cert_file), str(generated.key_file)
        log.info(
            "no --tls-cert-file given: generated a self-signed certificate for localhost",
            extra={"fields": {"ca_file": str(generated.ca_file), "cert_file": cert_file}},
        )

    reloader: CertificateReloader | None = None
    app = create_app(_injector_config(args), ready=lambda: reloader is not None and reloader.loaded)
    server_config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
        log_config=None,  # keep our JSON logging
        access_log=False,  # one structured line per admission says more
        server_header=False,
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
    asyncio.run(_serve(uvicorn.Server(server_config), reloader, args.tls_reload_interval))
    return 0


async def _serve(server, reloader, interval: float) -> None:
    watcher = asyncio.create_task(reloader.run(interval))
    try:
        await server.serve()
    finally:
        watcher.cancel()


# --- inject --------------------------------------------------------------------------------


def inject(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config = _injector_config(args)
    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        documents = load_documents(text)
    except (OSError, UnicodeDecodeError, InputError) as error:
        print(f"restart-process inject: {error}", file=sys.stderr)
        return 1

    output = []
    for index, document in enumerate(documents, start=1):
        mutated, results = transform_document(document, lambda pod, ns: mutate_pod(pod, config, ns))
        for label, mutation in results:
            for warning in mutation.warnings:
                print(f"{warning} [document {index}, {label}]", file=sys.stderr)
        output.append(mutated)
    sys.stdout.write(dump_documents(output))
    return 0


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
    )


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


def _add_injection_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "wrapper-image", DEFAULT_WRAPPER_IMAGE, "image of the init container that installs the wrapper")
    _flag(parser, "wrapper-image-pull-policy", "IfNotPresent", "imagePullPolicy of that init container")
    _flag(parser, "annotation-prefix", DEFAULT_PREFIX, "annotation prefix (the part before the /)")
    _flag(parser, "excluded-namespaces", "", "comma-separated namespaces never mutated, besides kube-system and kube-public")


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
    _flag(serve_parser, "tls-dir", None, "where to write a generated self-signed CA when no certificate is given")
    _flag(serve_parser, "tls-reload-interval", 5.0, "seconds between checks of the certificate files", type=float)
    _flag(serve_parser, "log-level", "info", "debug, info, warning or error")
    _add_injection_flags(serve_parser)
    serve_parser.set_defaults(run=serve)

    inject_parser = commands.add_parser(
        "inject", help="inject into manifests offline: YAML/JSON in, YAML out (like istioctl kube-inject)"
    )
    inject_parser.add_argument("-f", "--filename", required=True, help="manifest file, or - for standard input")
    _add_injection_flags(inject_parser)
    inject_parser.set_defaults(run=inject)
    return parser


if __name__ == "__main__":
    sys.exit(main())

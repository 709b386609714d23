"""The operator's settings, as typed values: what `cli` builds from flags and environment
variables, and what `serve`, `inject` and the pure core take (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import __version__
from .contract import DEFAULT_PREFIX
from .delivery import Delivery

DEFAULT_WRAPPER_IMAGE = f"restart-process/restart-wrapper:{__version__}"
ALWAYS_EXCLUDED_NAMESPACES = frozenset({"kube-system", "kube-public"})
# Local dev registries: loopback, kind's documented local registry, ctlptl's.
DEFAULT_INSECURE_REGISTRIES = ("localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "[::1]:*",
                               "kind-registry:*", "ctlptl-registry:*", "registry.localhost:*")


@dataclass(frozen=True)
class InjectorConfig:
    """What the mutation needs to know beyond the pod: shared by `serve` and `inject`."""

    wrapper_image: str = DEFAULT_WRAPPER_IMAGE
    wrapper_image_pull_policy: str = "IfNotPresent"
    annotation_prefix: str = DEFAULT_PREFIX
    excluded_namespaces: frozenset[str] = ALWAYS_EXCLUDED_NAMESPACES
    volume_size_limit: str = "16Mi"
    # For pods that do not choose: None leaves the wrapper's own default (rerun).
    default_exit_policy: str | None = None
    default_liveness_probe: str = "keep"
    # How the wrapper reaches pods that do not say (restart-process.dev/delivery); see `delivery`.
    delivery: Delivery = Delivery.AUTO
    init_resources: dict = field(
        default_factory=lambda: {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "32Mi"},
        }
    )

    def __post_init__(self):
        # kube-system and kube-public are never touched, whatever the operator lists.
        object.__setattr__(
            self, "excluded_namespaces", frozenset(self.excluded_namespaces) | ALWAYS_EXCLUDED_NAMESPACES
        )


@dataclass(frozen=True)
class LookupSettings:
    """Reading ENTRYPOINT/CMD from registries for containers without a command."""

    enabled: bool = True
    timeout: float = 2.0  # seconds for all lookups of one pod (serve) or one run (inject)
    insecure: tuple[str, ...] = DEFAULT_INSECURE_REGISTRIES
    aliases: dict[str, str] = field(default_factory=dict)  # registry as images name it -> where we reach it
    default_arch: str = "amd64"
    credentials: bool = False  # serve: read the pod's imagePullSecrets (needs RBAC on Secrets)
    discover_local_registry: bool = False  # serve: aliases from kube-public/local-registry-hosting


@dataclass(frozen=True)
class TLSSettings:
    mode: str = "files"  # files | self-managed
    cert_file: str | None = None
    key_file: str | None = None
    directory: str | None = None  # where generated certificates go (default: a new temporary directory)
    reload_interval: float = 5.0
    secret_name: str = "restart-process-webhook-tls"
    webhook_configuration_name: str = "restart-process-webhook"
    service_name: str = "restart-process-webhook"
    namespace: str | None = None
    check_interval: float = 30.0


@dataclass(frozen=True)
class ServeSettings:
    host: str = "0.0.0.0"
    port: int = 8443
    log_level: str = "info"
    # On SIGTERM, seconds to keep serving (not ready, closing connections) before stopping: the
    # time the Service's endpoints and the API server's connections take to move elsewhere. The
    # chart sets it; run alone (`make run`, the tests) there is nowhere else to move to.
    shutdown_delay: float = 0.0
    kubeconfig: str | None = None  # None: the in-cluster configuration
    tls: TLSSettings = field(default_factory=TLSSettings)
    injector: InjectorConfig = field(default_factory=InjectorConfig)
    lookup: LookupSettings = field(default_factory=LookupSettings)


@dataclass(frozen=True)
class InjectSettings:
    filename: str = "-"
    image_configs_file: str | None = None  # JSON of image -> {Entrypoint, Cmd}, used before any registry
    injector: InjectorConfig = field(default_factory=InjectorConfig)
    lookup: LookupSettings = field(default_factory=LookupSettings)

"""The Helm chart, rendered offline for the main value combinations and checked object by object."""

import subprocess

import pytest

from webhook import cli
from webhook.registration import opt_in_expression

from .helm import CHART, SECRET_MODE, RenderError, by_kind, helm, render

MODES = {"self-managed": (), "cert-manager": ("tls.mode=cert-manager",), "secret": SECRET_MODE}
# What delivery auto or image-volume reads of the cluster: read only, cluster-wide.
CLUSTER_FACTS_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
]


@pytest.mark.parametrize("mode", list(MODES))
def test_helm_lint_is_clean(mode):
    argv = [helm(), "lint", "--strict", str(CHART)]
    for value in MODES[mode]:
        argv += ["--set", value]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def deployment(objects):
    return by_kind(objects)["Deployment"][0]


def webhook_of(objects):
    return by_kind(objects)["MutatingWebhookConfiguration"][0]["webhooks"][0]


@pytest.mark.parametrize("mode", list(MODES))
def test_every_server_flag_the_chart_passes_exists(mode):
    container = deployment(render(*MODES[mode]))["spec"]["template"]["spec"]["containers"][0]
    args = cli._parser().parse_args(["serve", *container["args"]])  # exits on an unknown flag
    assert args.port == 8443 and args.annotation_prefix == "restart-process.dev"
    assert args.tls_mode == ("self-managed" if mode == "self-managed" else "files")
    assert args.init_resources == {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}
    assert "rp-system" in args.excluded_namespaces.split(",")


def test_default_is_self_managed_with_least_privilege_rbac():
    kinds = by_kind(render())
    assert sorted(kinds) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration",
                             "Role", "RoleBinding", "Service", "ServiceAccount"]
    role_rules = next(r for r in kinds["Role"] if r["metadata"]["namespace"] == "rp-system")["rules"]
    assert role_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rpw-restart-process-webhook-tls"],
         "verbs": ["get", "update"]},
    ]
    cluster_roles = {o["metadata"]["name"]: o["rules"] for o in kinds["ClusterRole"]}
    assert cluster_roles == {
        "rpw-restart-process-webhook": [
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": ["rpw-restart-process-webhook"], "verbs": ["get", "patch"]}],
        "rpw-restart-process-webhook-cluster-facts": CLUSTER_FACTS_RULES,  # delivery: auto
    }
    assert "caBundle" not in webhook_of(render())["clientConfig"]  # the webhook patches it in
    assert kinds["ServiceAccount"][0]["automountServiceAccountToken"] is True


@pytest.mark.parametrize("mode", ["cert-manager", "secret"])
def test_other_tls_modes_need_no_secret_access(mode):
    objects = render(*MODES[mode])
    rules = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] in ("Role", "ClusterRole")}
    assert rules == {  # local-registry discovery and delivery auto, both on by default
        "rpw-restart-process-webhook-local-registry": [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["local-registry-hosting"], "verbs": ["get"]}],
        "rpw-restart-process-webhook-cluster-facts": CLUSTER_FACTS_RULES}
    without_discovery = render(*MODES[mode], "registry.discoverLocalRegistry=false", "wrapper.delivery=init-container")
    kinds = by_kind(without_discovery)
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & set(kinds)
    assert kinds["ServiceAccount"][0]["automountServiceAccountToken"] is False
    pod = deployment(without_discovery)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == ("my-tls" if mode == "secret" else "rpw-restart-process-webhook-tls")


def test_cert_manager_mode():
    objects = render("tls.mode=cert-manager")
    kinds = by_kind(objects)
    assert kinds["Issuer"][0]["spec"] == {"selfSigned": {}}
    certificate = kinds["Certificate"][0]["spec"]
    assert certificate["dnsNames"] == ["rpw-restart-process-webhook.rp-system.svc",
                                       "rpw-restart-process-webhook.rp-system.svc.cluster.local"]
    configuration = kinds["MutatingWebhookConfiguration"][0]
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "rp-system/rpw-restart-process-webhook"
    with_issuer = by_kind(render("tls.mode=cert-manager", "tls.certManager.issuerRef.name=corp-ca",
                                 "tls.certManager.issuerRef.kind=ClusterIssuer"))
    assert "Issuer" not in with_issuer
    assert with_issuer["Certificate"][0]["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


@pytest.mark.parametrize("issuer", [{"name": "corp-ca"}, {"name": "corp-ca", "kind": "ClusterIssuer"},
                                    {"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}])
def test_an_issuer_ref_of_name_kind_and_group_goes_to_the_certificate(issuer):
    kinds = by_kind(render("tls.mode=cert-manager", values={"tls": {"certManager": {"issuerRef": issuer}}}))
    assert "Issuer" not in kinds and kinds["Certificate"][0]["spec"]["issuerRef"] == issuer


@pytest.mark.parametrize("issuer", [{"name": "corp-ca", "kindd": "ClusterIssuer"}, {"name": "corp-ca", "namespace": "x"},
                                    {"kind": "ClusterIssuer"}, {"group": "cert-manager.io"}, {"name": ""},
                                    {"name": "corp-ca", "kind": 3}])
def test_the_schema_refuses_any_other_issuer_ref(issuer):
    with pytest.raises(RenderError, match="schema"):
        render("tls.mode=cert-manager", values={"tls": {"certManager": {"issuerRef": issuer}}})


AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["dev"]}]}}]},
    "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                           "labelSelector": {"matchLabels": {"app": "registry"}}}}]},
    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname",
         "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "restart-process-webhook"}}}]},
}


def test_affinity_goes_to_the_pod_as_given():
    pod = deployment(render(values={"affinity": AFFINITY}))["spec"]["template"]["spec"]
    assert pod["affinity"] == AFFINITY


@pytest.mark.parametrize("affinity", [
    {"nodeAfinity": {}},  # a typo at the top
    {"podAntiAffinity": {"requiredDuringScheduling": []}},  # a typo one level down
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"nodeSelectorTerms": []}]}},  # a list
    {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 1}}},  # not a list
    {"nodeSelector": {"disktype": "ssd"}},  # the pod's field, not an affinity
])
def test_the_schema_checks_affinity_down_to_the_rules(affinity):
    with pytest.raises(RenderError, match="schema"):
        render(values={"affinity": affinity})


def test_inside_a_rule_the_schema_stops_and_the_api_server_checks():
    """Where values.yaml says the schema stops: inside a rule, keys are the API server's to check."""
    rule = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k", "bogus": 1}]}}
    assert deployment(render(values={"affinity": rule}))["spec"]["template"]["spec"]["affinity"] == rule


def test_secret_mode_requires_its_values():
    with pytest.raises(RenderError, match="tls.secret.name is required"):
        render("tls.mode=secret", "tls.secret.caBundle=Q0EK")
    with pytest.raises(RenderError, match="tls.secret.caBundle is required"):
        render("tls.mode=secret", "tls.secret.name=x")
    assert webhook_of(render(*SECRET_MODE))["clientConfig"]["caBundle"] == "Q0EK"


def test_webhook_configuration():
    webhook = webhook_of(render())
    assert webhook["failurePolicy"] == "Ignore" and webhook["timeoutSeconds"] == 5
    assert webhook["sideEffects"] == "None" and webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["pods"], "scope": "Namespaced"}]
    assert webhook["clientConfig"]["service"] == {"name": "rpw-restart-process-webhook", "namespace": "rp-system",
                                                  "path": "/mutate", "port": 443}
    assert webhook["namespaceSelector"]["matchExpressions"][0] == {
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kube-public", "rp-system"]}
    assert webhook_of(render("webhook.failurePolicy=Fail"))["failurePolicy"] == "Fail"


@pytest.mark.parametrize("prefix", ["restart-process.dev", "example.com"])
def test_match_conditions_are_the_same_cel_as_the_package(prefix):
    webhook = webhook_of(render(f"annotationPrefix={prefix}"))
    assert webhook["matchConditions"] == [{"name": "opted-in", "expression": opt_in_expression(prefix)}]


def test_match_conditions_only_where_the_cluster_has_them():
    assert "matchConditions" in webhook_of(render(kube_version="1.28.0"))
    assert "matchConditions" not in webhook_of(render(kube_version="1.27.3"))
    assert "matchConditions" not in webhook_of(render("webhook.matchConditions=false"))


def test_user_selectors_are_merged():
    webhook = webhook_of(render("webhook.namespaceSelector.matchLabels.team=dev",
                                "webhook.objectSelector.matchLabels.app=web", "excludedNamespaces={ci,prod}"))
    selector = webhook["namespaceSelector"]
    assert selector["matchLabels"] == {"team": "dev"}
    assert selector["matchExpressions"][0]["values"] == ["kube-system", "kube-public", "rp-system", "ci", "prod"]
    assert webhook["objectSelector"] == {"matchLabels": {"app": "web"}}


def test_webhook_pod_is_restricted_and_probed():
    pod = deployment(render())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    # A replacement joins the Service well inside the drain of the pod it replaces (shutdownDelaySeconds).
    assert container["readinessProbe"]["periodSeconds"] == 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("delay", [None, 0, 30])
def test_a_webhook_pod_drains_before_it_stops_and_a_rollout_keeps_one_ready(delay):
    """--shutdown-delay (tests/test_serve_shutdown.py: not ready, still answering) within the grace
    period, and a new replica Ready before an old one goes."""
    deploy = deployment(render(*([] if delay is None else [f"shutdownDelaySeconds={delay}"])))
    pod = deploy["spec"]["template"]["spec"]
    args = cli._parser().parse_args(["serve", *pod["containers"][0]["args"]])
    expected = 5 if delay is None else delay
    assert args.shutdown_delay == expected
    assert pod["terminationGracePeriodSeconds"] == expected + 10
    assert deploy["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def helm_test_pod(*sets: str) -> dict:
    (pod,) = [o for o in render(*sets, hooks=True) if o["metadata"].get("annotations", {}).get("helm.sh/hook")]
    return pod


def test_helm_test_opts_a_pod_in_where_the_webhook_looks_and_asks_it_whether_it_was_wrapped():
    pod = helm_test_pod()
    annotations = pod["metadata"]["annotations"]
    assert (pod["kind"], pod["metadata"]["namespace"], annotations["helm.sh/hook"]) == ("Pod", "default", "test")
    # Why it failed is printed by `helm test` itself (--logs looks in the release namespace only).
    assert annotations["helm.sh/hook-output-log-policy"] == "hook-failed"
    assert annotations["restart-process.dev/enabled"] == "true"
    assert annotations["restart-process.dev/exit-policy"] == "restart"  # the wrapper exits with the test's status
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == deployment(render())["spec"]["template"]["spec"]["containers"][0]["image"]
    args = cli._parser().parse_args(container["command"][1:])
    assert (args.command, args.webhook_configuration, args.webhook_namespace) == (
        "self-test", "rpw-restart-process-webhook", "rp-system")
    other = helm_test_pod("test.namespace=apps", "annotationPrefix=dev.example.com")
    assert other["metadata"]["namespace"] == "apps" and "dev.example.com/enabled" in other["metadata"]["annotations"]


def test_high_availability_adds_a_budget_and_a_spread():
    single = by_kind(render())
    assert "PodDisruptionBudget" not in single
    assert "topologySpreadConstraints" not in single["Deployment"][0]["spec"]["template"]["spec"]
    ha = by_kind(render("replicaCount=3"))
    assert ha["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    spread = ha["Deployment"][0]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"


def test_standard_labels_everywhere():
    for obj in render():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "restart-process-webhook"
        assert labels["app.kubernetes.io/instance"] == "rpw"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("bad", ["tls.mode=bogus", "webhook.failurePolicy=Sometimes", "webhok.timeoutSeconds=3",
                                 "webhook.timeoutSeconds=60", "replicaCount=0", "annotationPrefix=Not_A_Domain",
                                 "shutdownDelaySeconds=-1", "shutdownDelaySeconds=301", "test.namespace=Not_A_Name"])
def test_schema_rejects_bad_values(bad):
    with pytest.raises(RenderError, match="schema"):
        render(bad)


def test_notes_tell_the_user_how_to_annotate():
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "/enabled: \"true\"" in notes and "restart-wrapper trigger" in notes


def test_registry_lookup_values():
    args = deployment(render())["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--registry-timeout=2" in args and "--no-registry-lookup" not in args
    assert not any(a.startswith("--registry-credentials") for a in args)
    off = deployment(render("registry.lookup=false"))["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-registry-lookup" in off
    tuned = deployment(render("registry.insecureRegistries={my-registry:5000}", "registry.defaultArch=arm64"))
    tuned_args = tuned["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--insecure-registries=my-registry:5000" in tuned_args and "--default-arch=arm64" in tuned_args
    cli._parser().parse_args(["serve", *tuned_args])


def test_reading_pull_secrets_is_off_by_default_and_read_only_when_on():
    assert not [o for o in render() if o["metadata"]["name"].endswith("-pull-secrets")]
    objects = render("tls.mode=cert-manager", "registry.credentials=true")
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-pull-secrets"))
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets", "serviceaccounts"], "verbs": ["get"]}]
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True and "--registry-credentials" in pod["containers"][0]["args"]


def test_local_registry_discovery_and_aliases():
    objects = render("registry.aliases.localhost:5001=kind-registry:5000")
    role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["namespace"] == "kube-public")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["local-registry-hosting"],
                              "verbs": ["get"]}]
    args = deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = cli._parser().parse_args(["serve", *args])
    assert parsed.discover_local_registry and parsed.registry_aliases == {"localhost:5001": "kind-registry:5000"}
    off = render("registry.discoverLocalRegistry=false")
    assert not [o for o in off if o["metadata"].get("namespace") == "kube-public"]


@pytest.mark.parametrize("delivery", ["auto", "image-volume", "init-container"])
def test_delivery_is_passed_on_and_reads_the_cluster_only_when_it_can_need_to(delivery):
    objects = render(f"wrapper.delivery={delivery}", "tls.mode=cert-manager", "registry.discoverLocalRegistry=false")
    args = deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cli._parser().parse_args(["serve", *args]).delivery == delivery
    facts_roles = [o for o in objects if o["metadata"]["name"].endswith("-cluster-facts")]
    pod = deployment(objects)["spec"]["template"]["spec"]
    if delivery == "init-container":
        assert facts_roles == [] and pod["automountServiceAccountToken"] is False
    else:
        assert sorted(o["kind"] for o in facts_roles) == ["ClusterRole", "ClusterRoleBinding"]
        role = next(o for o in facts_roles if o["kind"] == "ClusterRole")
        assert role["rules"] == CLUSTER_FACTS_RULES and pod["automountServiceAccountToken"] is True
        binding = next(o for o in facts_roles if o["kind"] == "ClusterRoleBinding")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rpw-restart-process-webhook",
                                        "namespace": "rp-system"}]


def test_delivery_defaults_to_auto_and_the_schema_takes_only_the_three():
    args = deployment(render())["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--delivery=auto" in args
    with pytest.raises(RenderError, match="schema"):
        render("wrapper.delivery=volume")

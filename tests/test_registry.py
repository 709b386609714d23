"""ENTRYPOINT/CMD from a real registry (distribution v2 on loopback): the client, and the server using it."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from webhook.images import ImageConfig, LookupFailure
from webhook.pullsecrets import parse_docker_config
from webhook.registry import Credential, RegistryClient, Resolver

from .admission_reviews import apply_response, pod_review
from .golden_cases import expected_output, expected_warnings, image_configs, inputs
from .ports import free_port
from .processes import stop
from .registry_harness import DOCKER_LIST, DOCKER_MANIFEST, PASSWORD, USER, Registry
from webhook.tls import generate_self_signed

IMAGE_CASES = [case for case in inputs() if image_configs(case).exists()]


@pytest.fixture(scope="module")
def registry():
    running = Registry()
    yield running
    running.stop()


def lookup(image: str, arch: str = "amd64", credentials=(), client: RegistryClient | None = None, deadline=5.0):
    async def run():
        own = client or RegistryClient()
        try:
            return (await Resolver(own, deadline).resolve([image], arch, credentials))[image]
        finally:
            if client is None:
                await own.close()
    return asyncio.run(run())


def push_golden_image(registry: Registry, case) -> str:
    """Push the image a golden case assumes, and return its name in this registry."""
    (image, config), = json.loads(image_configs(case).read_text()).items()
    repository = image.split("/", 1)[1].split(":")[0]
    registry.push_image(repository, "dev", entrypoint=config["Entrypoint"], cmd=config["Cmd"])
    return f"{registry.host}/{repository}:dev"


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    """The real `restart-process serve`, registry lookup on (loopback registries are plain HTTP by default)."""
    directory = tmp_path_factory.mktemp("serve")
    certs = generate_self_signed(directory, ["127.0.0.1"])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-cert-file", str(certs.cert_file), "--tls-key-file", str(certs.key_file),
         "--registry-timeout", "3", "--default-arch", "amd64"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(certs.ca_file)))
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.get("/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
    yield client
    client.close()
    assert stop(process), "the server did not stop on SIGTERM"


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda p: p.name)
def test_golden_image_cases_through_the_server_and_a_real_registry(registry, server, case):
    pod = yaml.safe_load(case.read_text())
    image = push_golden_image(registry, case)
    pod["spec"]["containers"][0]["image"] = image
    response = server.post("/mutate", json=pod_review(pod)).json()["response"]
    expected = yaml.safe_load(expected_output(case).read_text())
    expected["spec"]["containers"][0]["image"] = image
    assert apply_response(pod, response) == expected
    if expected_warnings(case).exists():
        assert "image has no ENTRYPOINT or CMD" in response["warnings"][0]


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_an_index_is_resolved_to_the_pods_architecture(registry, server, media):
    manifest_type = DOCKER_MANIFEST if media == "docker" else None
    kwargs = {"media_type": manifest_type} if manifest_type else {}
    arm = registry.push_image(f"multi-{media}", "arm64", entrypoint=["/bin/arm"], arch="arm64", **kwargs)
    amd = registry.push_image(f"multi-{media}", "amd64", entrypoint=["/bin/amd"], arch="amd64", **kwargs)
    registry.push_index(f"multi-{media}", "v1", {"arm64": arm, "amd64": amd}, **({"media_type": DOCKER_LIST} if manifest_type else {}))
    image = f"{registry.host}/multi-{media}:v1"
    pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
           "spec": {"containers": [{"name": "app", "image": image}]}}
    on_default = apply_response(pod, server.post("/mutate", json=pod_review(pod)).json()["response"])
    assert on_default["spec"]["containers"][0]["command"][-1] == "/bin/amd"
    pod["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    on_arm = apply_response(pod, server.post("/mutate", json=pod_review(pod)).json()["response"])
    assert on_arm["spec"]["containers"][0]["command"][-1] == "/bin/arm"
    assert lookup(image, "s390x") == LookupFailure(f"{registry.host}/multi-{media} has no linux/s390x image")


def test_unknown_image_is_a_warning_and_the_pod_is_left_unwrapped(registry, server):
    pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
           "spec": {"containers": [{"name": "app", "image": f"{registry.host}/does-not-exist:v1"}]}}
    response = server.post("/mutate", json=pod_review(pod)).json()["response"]
    assert "patch" not in response
    warning = response["warnings"][0]
    assert "could not be read" in warning and "not found" in warning and "restart-process.dev/entrypoint" in warning


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_authenticated_registries_with_a_pull_secret(auth):
    registry = Registry(auth)
    try:
        registry.push_image("private/app", "v1", entrypoint=["/private"])
        image = f"{registry.host}/private/app:v1"
        anonymous = lookup(image)
        assert isinstance(anonymous, LookupFailure) and "needs credentials" in anonymous.reason
        secret = {".dockerconfigjson": __import__("base64").b64encode(json.dumps(
            {"auths": {registry.host: {"username": USER, "password": PASSWORD}}}).encode()).decode()}
        credentials = tuple(parse_docker_config("kubernetes.io/dockerconfigjson", secret))
        assert lookup(image, credentials=credentials) == ImageConfig(("/private",), ())
        wrong = (Credential(registry.host, USER, "wrong"),)
        assert isinstance(lookup(image, credentials=wrong), LookupFailure)
    finally:
        registry.stop()


def test_docker_config_formats():
    import base64
    auth = base64.b64encode(b"u:p:with:colons").decode()
    new = {".dockerconfigjson": base64.b64encode(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}).encode()).decode()}
    old = {".dockercfg": base64.b64encode(json.dumps({"reg.example:5000": {"username": "a", "password": "b"}}).encode()).decode()}
    assert parse_docker_config("kubernetes.io/dockerconfigjson", new) == [Credential("https://index.docker.io/v1/", "u", "p:with:colons")]
    assert parse_docker_config("kubernetes.io/dockercfg", old) == [Credential("reg.example:5000", "a", "b")]
    assert parse_docker_config("Opaque", {"x": "eA=="}) == []
    assert parse_docker_config("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "not base64 json"}) == []


def test_a_registry_that_never_answers_is_cut_off_at_the_deadline():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections into the backlog, never reads or answers
    try:
        started = time.monotonic()
        result = lookup(f"127.0.0.1:{silent.getsockname()[1]}/app:v1", deadline=0.5)
        elapsed = time.monotonic() - started
        assert result == LookupFailure("the registry did not answer within 0.5s")
        assert elapsed < 1.5
    finally:
        silent.close()


def test_the_server_answers_in_time_when_a_registry_hangs(server):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        pod = {"metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
               "spec": {"containers": [{"name": "app", "image": f"127.0.0.1:{silent.getsockname()[1]}/app:v1"}]}}
        started = time.monotonic()
        answer = server.post("/mutate", json=pod_review(pod), timeout=10)
        assert answer.status_code == 200 and time.monotonic() - started < 4.5  # deadline 3s, webhook timeout 5s
        assert "did not answer within 3s" in answer.json()["response"]["warnings"][0]
    finally:
        silent.close()


def test_cache_hits_make_no_request(registry):
    registry.push_image("cached", "v1", entrypoint=["/cached"])
    requests = []

    async def count(request):
        requests.append(request.url.path)

    async def run():
        client = RegistryClient(event_hooks={"request": [count]})
        resolver = Resolver(client, 5.0)
        try:
            first = await resolver.resolve([f"{registry.host}/cached:v1", f"{registry.host}/missing:v1"], "amd64")
            made = len(requests)
            second = await resolver.resolve([f"{registry.host}/cached:v1", f"{registry.host}/missing:v1"], "amd64")
            return first, made, second
        finally:
            await client.close()

    first, made, second = asyncio.run(run())
    assert made >= 3  # manifest + config for one, manifest for the other
    assert len(requests) == made  # the second round was answered from the cache, failures included
    assert first == second
    assert first[f"{registry.host}/cached:v1"] == ImageConfig(("/cached",), ())


def test_digest_references_are_cached_for_good(registry):
    digest = registry.push_image("pinned", "v1", entrypoint=["/pinned"])
    requests = []

    async def count(request):
        requests.append(request)

    async def run():
        client = RegistryClient(tag_ttl=0, event_hooks={"request": [count]})
        try:
            image = f"{registry.host}/pinned@{digest}"
            await client.image_config(image, "amd64")
            made = len(requests)
            await client.image_config(image, "amd64")
            return made
        finally:
            await client.close()

    made = asyncio.run(run())
    assert made == 2 and len(requests) == 2


def test_plain_http_only_for_listed_registries(registry):
    registry.push_image("strict", "v1", entrypoint=["/x"])
    result = lookup(f"{registry.host}/strict:v1", client=RegistryClient(insecure=()))
    assert isinstance(result, LookupFailure) and "cannot reach" in result.reason  # tried HTTPS, not HTTP


def test_inject_cli_reads_the_registry(registry, tmp_path):
    registry.push_image("cli", "v1", entrypoint=["/cli-entry"], cmd=["serve"])
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "image": f"{registry.host}/cli:v1"}]}}))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest)],
                            capture_output=True, text=True, timeout=30)
    container = yaml.safe_load(result.stdout)["spec"]["containers"][0]
    assert container["command"][-2:] == ["--", "/cli-entry"] and container["args"] == ["serve"]
    off = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest), "--no-registry-lookup"],
                         capture_output=True, text=True, timeout=30)
    assert "has no command to restart" in off.stderr


def test_a_registry_reached_under_another_name(registry, tmp_path):
    """As on kind: images say localhost:5001, the webhook's pod reaches the registry elsewhere."""
    registry.push_image("aliased", "v1", entrypoint=["/aliased"])
    named = f"localhost:{free_port()}"  # nothing listens there
    image = f"{named}/aliased:v1"
    assert isinstance(lookup(image), LookupFailure)
    assert lookup(image, client=RegistryClient(aliases={named: registry.host})) == ImageConfig(("/aliased",), ())

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
        "spec": {"containers": [{"name": "app", "image": image}]}}))
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest),
                             "--registry-aliases", f"{named}={registry.host}"], capture_output=True, text=True, timeout=30)
    assert yaml.safe_load(result.stdout)["spec"]["containers"][0]["command"][-1] == "/aliased"
    bad = subprocess.run([sys.executable, "-m", "webhook.cli", "inject", "-f", str(manifest), "--registry-aliases", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "FROM=TO" in bad.stderr


def test_local_registry_hosting_is_read_as_kep_1755_describes_it():
    from webhook.localregistry import aliases_from

    hosting = 'host: "localhost:5001"\nhostFromContainerRuntime: "kind-registry:5000"\nhostFromClusterNetwork: "kind-registry:5000"\n'
    assert aliases_from({"localRegistryHosting.v1": hosting}) == {"localhost:5001": "kind-registry:5000"}
    assert aliases_from({"localRegistryHosting.v1": 'host: "localhost:5001"\n'}) == {}
    assert aliases_from({"localRegistryHosting.v1": "[not: a mapping"}) == {}
    assert aliases_from(None) == {}

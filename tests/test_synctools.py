"""The sync tools' PATH: only ever appended to, never guessed (webhook/synctools.py).

The goldens (sync-tools-*.yaml) are the readable cases; this checks the rule on arbitrary env
lists and image PATHs, through the kubelet's expansion of env values. The node tests run the
real kubelet and containerd on the same seam (tests/node/test_sync_tools.py).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.config import InjectorConfig
from webhook.images import ImageConfig, LookupFailure, path_from_env
from webhook.mutate import mutate_pod
from webhook.names import TOOLS_DIR
from webhook.synctools import RUNTIME_DEFAULT_PATH

CONFIG = InjectorConfig(wrapper_image="restart-process/restart-wrapper:0.1.0")
IMAGE = "localhost:5000/app:dev"


def kubelet_expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' expansion of env values (third_party/forked/golang/expansion): `$$` is `$`,
    `$(NAME)` is NAME's value when defined earlier in the list, anything else is kept."""
    def replace(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        return defined.get(match[1], match[0])
    return re.sub(r"\$\$|\$\(([^)]*)\)", replace, value)


def kubelet_env(env: list[dict]) -> dict[str, str | None]:
    """The environment the kubelet gives the container (values only; valueFrom is None)."""
    result: dict[str, str | None] = {}
    for entry in env:
        value = entry.get("value")
        result[entry["name"]] = kubelet_expand(value, {k: v for k, v in result.items() if v is not None}) \
            if isinstance(value, str) else None
    return result


def pod(env: list[dict] | None, env_from: bool = False) -> dict:
    container = {"name": "app", "image": IMAGE, "command": ["/app/server"]}
    if env is not None:
        container["env"] = env
    if env_from:
        container["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"restart-process.dev/enabled": "true"}},
            "spec": {"containers": [container]}}


texts = st.text(alphabet="ab/:$()_", max_size=12)
entries = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["PATH", "HOME", "A"]), "value": texts}),
    st.fixed_dictionaries({"name": st.sampled_from(["PATH", "A"]),
                           "valueFrom": st.just({"configMapKeyRef": {"name": "c", "key": "k"}})}),
)
images = st.one_of(st.none(), st.builds(LookupFailure, st.just("registry down")),
                   st.builds(ImageConfig, path=st.one_of(st.none(), texts)))


@settings(max_examples=400, deadline=None)
@given(env=st.one_of(st.none(), st.lists(entries, max_size=4)), env_from=st.booleans(), image=images)
def test_path_is_appended_to_or_left_alone(env, env_from, image):
    source = pod(env, env_from)
    mutation = mutate_pod(source, CONFIG, image_configs={IMAGE: image} if image is not None else None)
    before = kubelet_env(env or [])
    after = kubelet_env(mutation.pod["spec"]["containers"][0].get("env") or [])
    assert {k: v for k, v in after.items() if k not in ("PATH", "RESTART_WRAPPER_RESTART_FILE")} == \
        {k: v for k, v in before.items() if k != "PATH"}, "another variable changed"

    warned = any("PATH unknown" in w for w in mutation.warnings)
    if after.get("PATH") == before.get("PATH"):
        # Unchanged: fine when the tools were already there, else the user is told why.
        assert warned or TOOLS_DIR in (before.get("PATH") or "").split(":"), mutation.warnings
        return
    assert not warned
    if "PATH" in before:  # the container's own PATH, the one the kubelet uses, plus the tools
        old = before["PATH"]
        assert old is not None, "a valueFrom PATH was replaced"
        assert after["PATH"] == (f"{old}:{TOOLS_DIR}" if old else TOOLS_DIR)
    else:  # the image's PATH, byte for byte after the kubelet's expansion, plus the tools
        assert not env_from and isinstance(image, ImageConfig)
        old = RUNTIME_DEFAULT_PATH if image.path is None else image.path
        assert after["PATH"] == (f"{old}:{TOOLS_DIR}" if old else TOOLS_DIR)


def test_path_from_an_image_config_env():
    assert path_from_env(["A=1", "PATH=/a:/b", "PATH=/c"]) == "/c"  # the last one, as the runtimes read it
    assert path_from_env(["PATHS=/x", "A=PATH=/y"]) is None
    assert path_from_env(None) is None and path_from_env("PATH=/x") is None

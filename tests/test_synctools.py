"""The sync tools' PATH: first with restart-on-sync, appended without it, never guessed
(webhook/synctools.py).

The goldens (sync-tools-*.yaml, restart-on-sync-*.yaml) are the readable cases; this checks the
rule on arbitrary env lists and image PATHs, through the kubelet's expansion of env values. The
node tests run the real kubelet and containerd on the same seam (tests/node/test_sync_tools.py).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.config import InjectorConfig
from webhook.contract import ContainerSettings
from webhook.images import ImageConfig, LookupFailure, path_from_env
from webhook.mutate import mutate_pod
from webhook.names import SYNC_ENV, TOOLS_DIR, TRIGGER_ENV, sync_file
from webhook.synctools import RUNTIME_DEFAULT_PATH, PathChange, PathUnknown, tools_on_path

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


def pod(env: list[dict] | None, env_from: bool = False, restart_on_sync: str | None = None) -> dict:
    container = {"name": "app", "image": IMAGE, "command": ["/app/server"]}
    if env is not None:
        container["env"] = env
    if env_from:
        container["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    annotations = {"restart-process.dev/enabled": "true"}
    if restart_on_sync is not None:
        annotations["restart-process.dev/restart-on-sync"] = restart_on_sync
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations},
            "spec": {"containers": [container]}}


def directories(path: str) -> list[str]:
    return path.split(":") if path else []


def without_tools(path: str) -> list[str]:
    return [entry for entry in directories(path) if entry != TOOLS_DIR]


# Arbitrary text, and PATHs that already hold the tools (anywhere, once or twice), next to the
# working directory ("") and $(VAR) references, some of which span a ':'.
texts = st.one_of(
    st.text(alphabet="ab/:$()_", max_size=12),
    st.lists(st.sampled_from(["/a", "", TOOLS_DIR, "$(HOME)", "$(A", ")", "$$"]), max_size=4).map(":".join),
)
entries = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["PATH", "HOME", "A"]), "value": texts}),
    st.fixed_dictionaries({"name": st.sampled_from(["PATH", "A"]),
                           "valueFrom": st.just({"configMapKeyRef": {"name": "c", "key": "k"}})}),
)
images = st.one_of(st.none(), st.builds(LookupFailure, st.just("registry down")),
                   st.builds(ImageConfig, path=st.one_of(st.none(), texts)))


@pytest.mark.parametrize("restart_on_sync", [None, "true", "false"])
@settings(max_examples=400, deadline=None)
@given(env=st.one_of(st.none(), st.lists(entries, max_size=4)), env_from=st.booleans(), image=images)
def test_path_gets_the_tools_first_or_last_or_is_left_alone(restart_on_sync, env, env_from, image):
    source = pod(env, env_from, restart_on_sync)
    mutation = mutate_pod(source, CONFIG, image_configs={IMAGE: image} if image is not None else None)
    container = mutation.pod["spec"]["containers"][0]
    before = kubelet_env(env or [])
    after = kubelet_env(container.get("env") or [])
    assert {k: v for k, v in after.items() if k not in ("PATH", TRIGGER_ENV, SYNC_ENV)} == \
        {k: v for k, v in before.items() if k != "PATH"}, "another variable changed"
    first = restart_on_sync != "false"
    synced = after.get(SYNC_ENV) == sync_file("app")
    assert synced == (f"--sync-file={sync_file('app')}" in container["command"])

    path_warnings = [w for w in mutation.warnings if "PATH unknown" in w]
    warned = bool(path_warnings)
    # Restart-on-sync lost with the tools: said in the PATH warning when on by default, in its own when asked for.
    assert all(("a sync will not restart the program" in w) == (restart_on_sync is None) for w in path_warnings)
    assert any("restart-on-sync" in w for w in mutation.warnings) == (restart_on_sync == "true" and not synced)
    if after.get("PATH") == before.get("PATH"):
        # Unchanged: fine when the tools were already where they go, else the user is told why.
        had = directories(before.get("PATH") or "")
        assert warned or (had[:1] == [TOOLS_DIR] if first else TOOLS_DIR in had), mutation.warnings
        assert synced == (first and not warned)
        return
    assert not warned
    assert synced == first
    if "PATH" in before:  # the container's own PATH, the one the kubelet uses, plus the tools
        old = before["PATH"]
        assert old is not None, "a valueFrom PATH was replaced"
    else:  # the image's PATH, byte for byte after the kubelet's expansion, plus the tools
        assert not env_from and isinstance(image, ImageConfig)
        old = RUNTIME_DEFAULT_PATH if image.path is None else image.path
    if first:  # in front, and every other entry as it was, in its order
        assert directories(after["PATH"])[0] == TOOLS_DIR
        assert without_tools(after["PATH"]) == without_tools(old)
    else:
        assert after["PATH"] == (f"{old}:{TOOLS_DIR}" if old else TOOLS_DIR)


DECLARED = {"name": "app", "env": [{"name": "HOME", "value": "/home"}, {"name": "PATH", "value": "/usr/bin:/bin"}]}


def declared(path: str) -> dict:
    return {"name": "app", "env": [{"name": "PATH", "value": path}]}


@pytest.mark.parametrize("path, first, last", [
    ("/usr/bin:/bin", f"{TOOLS_DIR}:/usr/bin:/bin", f"/usr/bin:/bin:{TOOLS_DIR}"),
    ("", TOOLS_DIR, TOOLS_DIR),  # no directories: no ':' that would add the working directory
    # Already there, not first: moved to the front; with restart-on-sync off, left alone.
    (f"/usr/bin:{TOOLS_DIR}:/bin", f"{TOOLS_DIR}:/usr/bin:/bin", None),
    (f"/usr/bin:{TOOLS_DIR}:{TOOLS_DIR}", f"{TOOLS_DIR}:/usr/bin", None),
    (f"/usr/bin::{TOOLS_DIR}", f"{TOOLS_DIR}:/usr/bin:", None),  # the working directory ("") stays
    (TOOLS_DIR + ":", None, None),  # already first: the same PATH again
    # With a `$`, nothing is removed: the tools go in front, the old entry stays.
    (f"$(HOME)/bin:{TOOLS_DIR}", f"{TOOLS_DIR}:$(HOME)/bin:{TOOLS_DIR}", None),
    ("$(HOME)/bin", f"{TOOLS_DIR}:$(HOME)/bin", f"$(HOME)/bin:{TOOLS_DIR}"),
])
def test_a_declared_path_gets_the_tools_first_or_last(path, first, last):
    for position, expected in ((True, first), (False, last)):
        change = tools_on_path(declared(path), ContainerSettings(), None, first=position)
        assert change == (None if expected is None else PathChange(expected, 0, path)), position


def test_the_image_path_gets_the_tools_first_in_a_new_entry():
    change = tools_on_path({"name": "app"}, ContainerSettings(), ImageConfig(path="/odd$dir:/bin"), first=True)
    assert change == PathChange(f"{TOOLS_DIR}:/odd$$dir:/bin", None, None)
    change = tools_on_path({"name": "app"}, ContainerSettings(), ImageConfig(), first=True)
    assert change == PathChange(f"{TOOLS_DIR}:{RUNTIME_DEFAULT_PATH}", None, None)


def test_the_position_changes_nothing_else():
    """Unknown stays unknown, and sync-tools "false" wants no change, wherever the tools would go."""
    for first in (True, False):
        assert tools_on_path({"name": "app", "envFrom": [{}]}, ContainerSettings(), None, first=first) == \
            PathUnknown("its envFrom may set PATH")
        assert tools_on_path(DECLARED, ContainerSettings(sync_tools=False), None, first=first) is None
        assert tools_on_path(DECLARED, ContainerSettings(), None, first=first).index == 1  # the PATH entry


def test_path_from_an_image_config_env():
    assert path_from_env(["A=1", "PATH=/a:/b", "PATH=/c"]) == "/c"  # the last one, as the runtimes read it
    assert path_from_env(["PATHS=/x", "A=PATH=/y"]) is None
    assert path_from_env(None) is None and path_from_env("PATH=/x") is None

"""`restart-process self-test`: run inside a pod that opted in, say whether the webhook wrapped it.

The chart's `helm test` pod (templates/tests/) is such a pod, with exit-policy `restart` so that the
wrapper exits with this program's status. Injected, PID 1 is the wrapper and this is its child; not
injected, this is PID 1 -- because the webhook was down or unreachable (it fails open, and the API
server tells nobody), or the pod's namespace is not covered. The answer says which, and what to
look at, since a bare "pod failed" from `helm test` would not.
"""

from __future__ import annotations

import os
from pathlib import Path

WRAPPER = "/restart-process/restart-wrapper"


def run(webhook_configuration: str, webhook_namespace: str, proc: Path = Path("/proc")) -> int:
    init = _command_line(proc / "1")
    namespace = os.environ.get("POD_NAMESPACE", "this namespace")
    wrapped = len(init) >= 2 and os.path.basename(init[0]) == os.path.basename(WRAPPER) and init[1] == "run"
    if wrapped and os.getppid() == 1:
        print(f"restart-process: injected: this pod opted in and runs under {WRAPPER} (PID 1); "
              f"the webhook mutated it")
        return 0
    print(f"restart-process: NOT injected: this pod opted in, but PID 1 is {' '.join(init) or 'unknown'!r}, "
          f"not {WRAPPER}. The webhook did not mutate it: check that its pods are Ready "
          f"(kubectl -n {webhook_namespace} get pods), that MutatingWebhookConfiguration {webhook_configuration} "
          f"has a caBundle, and that namespace {namespace} is not excluded (excludedNamespaces). The API "
          f"server admits pods unwrapped while the webhook cannot be reached (failurePolicy: Ignore).")
    return 1


def _command_line(process: Path) -> list[str]:
    try:
        raw = (process / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]

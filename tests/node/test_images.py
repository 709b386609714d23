"""The wrapper image hack/push-wrapper-image.sh builds (`make wrapper-image`) is the Dockerfile's
`wrapper` target: the same file, owner, mode, user, entrypoint and command."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wrapper_image_has_the_layout_of_the_dockerfile_target(node_images):
    crane = [str(node_images.builder.crane), "--insecure"]
    config = json.loads(subprocess.run([*crane, "config", node_images.wrapper], capture_output=True, check=True).stdout)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/restart-wrapper"]
    assert config["config"]["Cmd"] == ["version"]
    assert (config["os"], len(config["rootfs"]["diff_ids"])) == ("linux", 1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in ("FROM scratch AS wrapper", "COPY --from=wrapper-build /src/build/restart-wrapper /restart-wrapper",
                 "USER 65532:65532", 'ENTRYPOINT ["/restart-wrapper"]', 'CMD ["version"]'):
        assert line in dockerfile, f"the Dockerfile changed: update hack/push-wrapper-image.sh too ({line})"

    exported = subprocess.run([*crane, "export", node_images.wrapper, "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid, member.gid, member.isfile()) == ("restart-wrapper", 0o755, 0, 0, True)
        assert tar.extractfile(member).read() == (ROOT / "build" / "restart-wrapper").read_bytes()

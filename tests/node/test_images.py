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
    for line in ("FROM scratch AS wrapper", "COPY --from=wrapper-build /image/ /",
                 "USER 65532:65532", 'ENTRYPOINT ["/restart-wrapper"]', 'CMD ["version"]'):
        assert line in dockerfile, f"the Dockerfile changed: update hack/push-wrapper-image.sh too ({line})"

    exported = subprocess.run([*crane, "export", node_images.wrapper, "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert sorted(members) == ["bin", "bin/rm", "bin/tar", "bin/test", "restart-wrapper"]
        member = members["restart-wrapper"]
        assert (member.mode, member.uid, member.gid, member.isfile()) == (0o755, 0, 0, True)
        assert tar.extractfile(member).read() == (ROOT / "build" / "restart-wrapper").read_bytes()
        assert (members["bin"].isdir(), members["bin"].mode, members["bin"].uid) == (True, 0o755, 0)
        for name in ("bin/tar", "bin/rm", "bin/test"):  # what `restart-wrapper install` lays down
            assert (members[name].issym(), members[name].linkname, members[name].uid) == (True, "../restart-wrapper", 0)

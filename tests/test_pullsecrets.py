"""Pull secrets as the registry client needs them: both Docker config formats, and what is not one."""

import base64
import json

from webhook.images import Credential
from webhook.pullsecrets import parse_docker_config


def test_docker_config_formats():
    auth = base64.b64encode(b"u:p:with:colons").decode()
    new = {".dockerconfigjson": base64.b64encode(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}).encode()).decode()}
    old = {".dockercfg": base64.b64encode(json.dumps({"reg.example:5000": {"username": "a", "password": "b"}}).encode()).decode()}
    assert parse_docker_config("kubernetes.io/dockerconfigjson", new) == [Credential("https://index.docker.io/v1/", "u", "p:with:colons")]
    assert parse_docker_config("kubernetes.io/dockercfg", old) == [Credential("reg.example:5000", "a", "b")]
    assert parse_docker_config("Opaque", {"x": "eA=="}) == []
    assert parse_docker_config("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "not base64 json"}) == []

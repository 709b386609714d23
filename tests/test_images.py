"""Image references and the `images` matching rule (webhook/images.py), table by table."""

import pytest

from webhook.images import DOCKER_HUB, ImageReference, image_matches, same_registry


@pytest.mark.parametrize(
    "image, pattern, matches",
    [
        ("localhost:5000/foo-image:tilt-1a2b", "foo-image", True),
        ("gcr.io/p/foo-image@sha256:" + "a" * 64, "foo-image", True),
        ("foo-image", "foo-image", True),
        ("docker.io/library/foo-image:1", "foo-image", True),
        ("foo-image-two:latest", "foo-image", False),
        ("foo-image/sub:latest", "foo-image", False),
        ("registry.example.com:5000/team/bar:v2", "team/bar", True),
        ("other/bar:v1", "team/bar", False),
        ("localhost:5000/foo:tag", "localhost:5000/foo", True),
        ("registry.example.com/foo:tag", "localhost:5000/foo", False),
        ("foo:tag", "foo:other-tag", True),  # a tag in the pattern is ignored, like in Tilt
    ],
)
def test_image_matching(image, pattern, matches):
    assert image_matches(image, pattern) is matches


def test_repository_parsing_keeps_port_out_of_the_tag():
    assert ImageReference.parse("localhost:5000/a/b:c") == ImageReference("localhost:5000", ("a", "b"), "c")
    assert ImageReference.parse("a/b") == ImageReference(None, ("a", "b"))


@pytest.mark.parametrize(
    "image, registry, repository, reference",
    [
        ("nginx", DOCKER_HUB, "library/nginx", "latest"),
        ("docker.io/nginx:1.27", DOCKER_HUB, "library/nginx", "1.27"),
        ("index.docker.io/team/app:v1", DOCKER_HUB, "team/app", "v1"),
        ("team/app@sha256:" + "b" * 64, DOCKER_HUB, "team/app", "sha256:" + "b" * 64),
        ("localhost:5000/app:tilt-1a2b", "localhost:5000", "app", "tilt-1a2b"),
        ("localhost/app", "localhost", "app", "latest"),
        ("ghcr.io/o/r/app:1@sha256:" + "c" * 64, "ghcr.io", "o/r/app", "sha256:" + "c" * 64),
    ],
)
def test_references_normalise_the_way_registries_name_them(image, registry, repository, reference):
    ref = ImageReference.parse(image)
    assert (ref.registry, ref.repository, ref.reference) == (registry, repository, reference)
    assert ref.is_valid()


def test_invalid_repositories_are_recognised():
    assert not ImageReference.parse("Upper/Case").is_valid()
    assert not ImageReference.parse("a//b").is_valid()


@pytest.mark.parametrize(
    "configured, registry, same",
    [
        ("https://index.docker.io/v1/", DOCKER_HUB, True),
        ("docker.io", DOCKER_HUB, True),
        ("reg.example:5000", "reg.example:5000", True),
        ("http://reg.example:5000/v2/", "reg.example:5000", True),
        ("reg.example", "reg.example:5000", False),
    ],
)
def test_pull_secret_registry_keys(configured, registry, same):
    assert same_registry(configured, registry) is same

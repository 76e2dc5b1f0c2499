"""Fixtures of the deployment tests: a private podman, the images built from the repository's
Containerfiles on a Debian base made here, and a certificate authority for real TLS.

Without podman (or as a non-root user) these tests are skipped on a developer's machine, and
fail in CI (CI=true), where .ci/run installs what they need.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from authority import Authority, make_authority
from podman_lab import ROOT, Podman, ToolingMissing, build_context, image_wheels, require_tools

PARLEY_IMAGE = "localhost/parley:test"
COMPOSE_IMAGE = "localhost/parley-compose:test"
POSTGRES_IMAGE = "localhost/parley-postgres:test"
SYSTEMD_IMAGE = "localhost/parley-systemd:test"
# Building the images the first time includes debootstrap and compiling PyICU.
SETUP_TIMEOUT_SECONDS = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.deploy)
            item.add_marker(pytest.mark.timeout(SETUP_TIMEOUT_SECONDS))


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"The deployment tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"deployment tests: {reason}")


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """A podman of this session alone; afterwards nothing it made is left behind."""
    try:
        require_tools()
    except ToolingMissing as exc:
        unavailable(str(exc))
    root = Path(tempfile.mkdtemp(prefix="parley-podman-"))
    lab = Podman(root)
    try:
        try:
            lab.import_base_image()
            lab.works()
        except ToolingMissing as exc:
            unavailable(str(exc))
        yield lab
        left = lab.leftovers()
    finally:
        lab.remove_everything()
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"the deployment tests left these behind: {left}"


@pytest.fixture(scope="session")
def parley_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Containerfile built with wheels made on this machine (no network in the build)."""
    try:
        wheels = image_wheels()
    except ToolingMissing as exc:
        unavailable(str(exc))
    context = build_context(tmp_path_factory.mktemp("image") / "context", wheels)
    podman.build(PARLEY_IMAGE, context, build_args={"WHEELS": "wheels"})
    return PARLEY_IMAGE


@pytest.fixture(scope="session")
def compose_image(
    podman: Podman, parley_image: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The Containerfile built as `podman-compose up --build` builds it: in podman's default
    format, OCI, which has no HEALTHCHECK, so the stack's health check must come from
    compose.yaml. (After ``parley_image``, whose wheels and layers it reuses.)
    """
    context = build_context(tmp_path_factory.mktemp("compose-image") / "context", image_wheels())
    podman.build(COMPOSE_IMAGE, context, build_args={"WHEELS": "wheels"}, image_format="oci")
    return COMPOSE_IMAGE


@pytest.fixture(scope="session")
def postgres_image(podman: Podman) -> str:
    podman.build(POSTGRES_IMAGE, ROOT / "deploy" / "postgres")
    return POSTGRES_IMAGE


@pytest.fixture(scope="session")
def systemd_image(
    podman: Podman, parley_image: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The Parley image plus systemd as PID 1, with the repository's unit and settings
    installed as docs/deploy.md says.
    """
    context = tmp_path_factory.mktemp("systemd-image")
    shutil.copy2(ROOT / "deploy" / "parley.service", context / "parley.service")
    shutil.copy2(ROOT / "deploy" / "etc" / "parley.toml", context / "parley.toml")
    (context / "Containerfile").write_text(
        f"FROM {parley_image}\n"
        "USER root\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends systemd procps"
        " && rm -rf /var/lib/apt/lists/*\n"
        "COPY parley.service /etc/systemd/system/parley.service\n"
        "COPY parley.toml /etc/parley/parley.toml\n"
        "RUN systemctl enable parley.service\n"
        "ENTRYPOINT []\n"
        'CMD ["/lib/systemd/systemd"]\n'
    )
    podman.build(SYSTEMD_IMAGE, context)
    return SYSTEMD_IMAGE


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("authority"))

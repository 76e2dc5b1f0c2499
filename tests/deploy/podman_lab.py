"""A private podman for the deployment tests.

Its storage, networks and run-time state live in one temporary directory (CONTAINERS_STORAGE_CONF
and CONTAINERS_CONF point there), so whatever a test builds or starts is removed with it and
nothing reaches the machine's own podman. Two things are kept between runs, outside the
repository, because they are slow to make and depend only on what they are made from: the
Debian base image (debootstrap) and the Python wheels built on this machine for the image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("PARLEY_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the base image is made from; any change here makes a new cache entry.
BASE_RECIPE = f"debootstrap --variant=minbase bookworm {DEBIAN_MIRROR} {platform.machine()} v1"
# The files of the repository an image build needs (the rest of the tree is left out).
BUILD_CONTEXT = [
    "Containerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "requirements.txt",
    "src",
    "deploy",
]
# The image's user (Containerfile: PARLEY_UID).
PARLEY_UID = 10001
# The image's Python: bookworm's python3.
IMAGE_PYTHON = (3, 11)
IMAGE_ICU_MAJOR = "72"


class ToolingMissing(Exception):
    """podman, debootstrap or podman-compose cannot be used on this machine."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "parley-deploy-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One test session at a time makes a cache entry; the others wait, then reuse it."""
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(
    args: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end within ``timeout``; a failure shows its output."""
    try:
        result = subprocess.run(
            [str(arg) for arg in args],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(map(str, args))} took more than {timeout} s") from exc
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} failed with status {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_tools() -> None:
    tools = ("podman", "debootstrap", "runc", "iptables")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ToolingMissing(
            f"{', '.join(missing)} not found: install them (Debian: apt-get install podman "
            "runc debootstrap netavark aardvark-dns iptables), as .ci/run does"
        )
    if os.geteuid() != 0:
        raise ToolingMissing("the deployment tests run podman as root (rootful podman)")


def base_image_tarball() -> Path:
    """The root file system of Debian bookworm (minbase) as a tar file, made once."""
    key = hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:16]
    cache = cache_dir()
    tarball = cache / f"debian-bookworm-minbase-{key}.tar"
    with locked(cache / "base.lock"):
        if tarball.exists():
            return tarball
        with tempfile.TemporaryDirectory(dir=cache, prefix="debootstrap-") as work:
            rootfs = Path(work) / "rootfs"
            run(
                ["debootstrap", "--variant=minbase", "bookworm", rootfs, DEBIAN_MIRROR],
                timeout=1200,
            )
            # As in Debian's own slim images: no package lists, no apt caches.
            for leftovers in ("var/lib/apt/lists", "var/cache/apt"):
                for item in (rootfs / leftovers).glob("*"):
                    if item.is_file():
                        item.unlink()
            partial = Path(work) / "rootfs.tar"
            run(["tar", "-C", rootfs, "--numeric-owner", "-cf", partial, "."], timeout=300)
            os.replace(partial, tarball)
    return tarball


def _icu_version() -> str:
    result = run(["pkg-config", "--modversion", "icu-i18n"], timeout=30, check=False)
    return result.stdout.strip()


def image_wheels() -> Path:
    """Wheels of Parley's dependencies (and of the build tools) for the image's Python, built
    on this machine so that the image build needs no network from inside the container.
    """
    if sys.version_info[:2] != IMAGE_PYTHON:
        raise ToolingMissing(
            f"the image runs Debian bookworm's Python {IMAGE_PYTHON[0]}.{IMAGE_PYTHON[1]}; "
            f"its wheels are built here with this Python, which is {platform.python_version()}"
        )
    icu = _icu_version()
    if icu.split(".")[0] != IMAGE_ICU_MAJOR:
        raise ToolingMissing(
            f"PyICU's wheel is built against this machine's ICU ({icu or 'none'}) and the image "
            f"has libicu{IMAGE_ICU_MAJOR}: build on Debian bookworm (libicu-dev 72)"
        )
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = hashlib.sha256(
        requirements + f"{platform.python_version()} {platform.machine()} {icu}".encode()
    ).hexdigest()[:16]
    cache = cache_dir()
    wheels = cache / f"wheels-{key}"
    with locked(cache / "wheels.lock"):
        if wheels.is_dir():
            return wheels
        partial = Path(tempfile.mkdtemp(dir=cache, prefix="wheels-partial-"))
        try:
            run(
                [
                    *(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", partial),
                    *("-r", ROOT / "requirements.txt", "setuptools>=69", "wheel"),
                ],
                timeout=1800,
            )
            os.replace(partial, wheels)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return wheels


class Podman:
    """podman with its own storage root, networks and state under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        storage = root / "storage.conf"
        storage.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{root / "graph"}"\n'
            f'runroot = "{root / "run"}"\n'
        )
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = min(nofile, 1048576) if nofile != resource.RLIM_INFINITY else 1048576
        containers = root / "containers.conf"
        # runc: crun cannot set the limits here; the limits: the defaults exceed the hard ones.
        containers.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{root / "events.log"}"\n'
            f'tmp_dir = "{root / "tmp"}"\n'
            "[network]\n"
            'network_backend = "netavark"\n'
            f'network_config_dir = "{root / "networks"}"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(containers),
            "BUILDAH_FORMAT": "docker",
        }

    def __call__(
        self, *args: str | Path, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["podman", *args], env=self.env, timeout=timeout, check=check)

    def works(self) -> None:
        """A container runs: fails with what podman said if not."""
        result = self("run", "--rm", "--network", "none", BASE_IMAGE, "true", check=False)
        if result.returncode != 0:
            raise ToolingMissing(f"podman cannot run a container here: {result.stderr.strip()}")

    def import_base_image(self) -> None:
        self("import", base_image_tarball(), BASE_IMAGE, timeout=300)

    def build(
        self,
        tag: str,
        context: Path,
        *,
        build_args: Mapping[str, str] | None = None,
        image_format: str = "docker",
    ) -> None:
        args: list[str | Path] = ["build", "--network", "host", "--format", image_format, "-t", tag]
        for name, value in (build_args or {}).items():
            args += ["--build-arg", f"{name}={value}"]
        self(*args, context, timeout=1200)

    def compose(
        self, compose_file: Path, project: str, *args: str, env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [sys.executable, "-m", "podman_compose", "-f", compose_file, "-p", project, *args],
            env={**self.env, **env},
            cwd=compose_file.parent,
            timeout=timeout,
        )

    def wait_healthy(self, container: str, *, timeout: float) -> None:
        """Run the container's HEALTHCHECK until it passes (podman runs it by itself only
        under systemd).
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self("healthcheck", "run", container, check=False, timeout=60)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                logs = self("logs", container, check=False).stdout
                raise AssertionError(
                    f"{container} not healthy after {timeout} s: {result.stdout}"
                    f"{result.stderr}\nits log:\n{logs[-3000:]}"
                )
            time.sleep(1)

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks (other than podman's default) still there."""
        found = []
        for kind, listing in (
            ("container", ["ps", "-a", "--format", "{{.Names}}"]),
            ("volume", ["volume", "ls", "--format", "{{.Name}}"]),
            ("network", ["network", "ls", "--format", "{{.Name}}"]),
        ):
            for name in self(*listing, check=False).stdout.split():
                if not (kind == "network" and name == "podman"):
                    found.append(f"{kind} {name}")
        return found

    def remove_everything(self) -> None:
        self("rm", "--all", "--force", "--time", "5", check=False, timeout=180)
        self("volume", "rm", "--all", "--force", check=False)
        self("network", "prune", "--force", check=False)
        self("system", "reset", "--force", check=False, timeout=300)


def build_context(destination: Path, wheels: Path | None) -> Path:
    """The repository's files an image needs, plus the wheels (as ``wheels/``)."""
    destination.mkdir(parents=True)
    for name in BUILD_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source,
                destination / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(source, destination / name)
    if wheels is not None:
        shutil.copytree(wheels, destination / "wheels")
    return destination

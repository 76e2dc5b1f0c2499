"""The image as the Containerfile describes it, and its refusal of a data dir others can read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from podman_lab import PARLEY_UID, Podman


def test_the_image_runs_as_parley_with_its_data_on_a_volume(
    podman: Podman, parley_image: str
) -> None:
    image = json.loads(podman("image", "inspect", parley_image).stdout)[0]
    config = image["Config"]
    assert config["User"] == "parley"
    assert set(config["ExposedPorts"]) == {"7976/tcp", "7977/tcp", "9976/tcp"}
    assert list(config["Volumes"]) == ["/data"]
    assert "http://127.0.0.1:9976/readyz" in " ".join(image["Healthcheck"]["Test"])
    assert not any(entry.startswith("DEBIAN_FRONTEND=") for entry in config["Env"])
    # The runtime has no compiler or headers: only the build stage had them.
    found = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        parley_image,
        "-c",
        "command -v gcc g++ cc; ls /usr/include/unicode 2>/dev/null; true",
    )
    assert found.stdout.strip() == ""


def test_a_data_dir_that_others_can_read_is_refused_with_the_fix(
    podman: Podman, parley_image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    os.chown(data, PARLEY_UID, PARLEY_UID)
    result = podman(
        *("run", "--rm", "--network", "none", "--volume", f"{data}:/data", parley_image),
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "/data can be read by other users (mode 0755)" in result.stderr
    assert "Run: chmod -R go-rwx /data" in result.stderr
    assert list(data.iterdir()) == []  # nothing was written there

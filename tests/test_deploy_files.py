"""What `deploy/` and the Dockerfile ship (docs/production.md): unit files systemd accepts, commands
the `kassa` CLI has, an environment example naming only real settings (and valid as it stands), a
reverse-proxy example that forwards the client's address and scheme, and an image that builds
(only where Docker runs)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kassa.cli import app
from kassa.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ("kassa-migrate.service", "kassa-web@.service", "kassa-worker.service")
INSTALLED_KASSA = "/opt/kassa/venv/bin/kassa"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ReadWritePaths": "/var/lib/kassa",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
}
runner = CliRunner()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text(), source=name)
    return parser


def assert_kassa_command(argv: list[str]) -> None:
    """`argv` (after the program) is a command of the typer CLI, with options it has."""
    args = [a.replace("%i", "8001") for a in argv]
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"kassa {' '.join(args)}: {result.output}"
    for option in (a for a in args if a.startswith("--")):
        assert option in result.output, f"kassa {' '.join(args)}: no option {option}"


@pytest.mark.parametrize("name", UNITS)
def test_a_unit_file_parses_and_is_hardened(name: str) -> None:
    parsed = unit(name)
    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    service = parsed["Service"]
    assert (service["User"], service["Group"]) == ("kassa", "kassa")
    assert service["EnvironmentFile"] == "/etc/kassa/kassa.env"
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == INSTALLED_KASSA
    assert_kassa_command(argv[1:])
    if name == "kassa-migrate.service":
        assert service["Type"] == "oneshot" and service["RemainAfterExit"] == "yes"
        assert argv[1:] == ["migrate"]
    else:
        for key in ("Requires", "After"):
            assert "kassa-migrate.service" in parsed["Unit"][key].split(), f"{name}: {key}"
        assert service["Restart"] == "always"
    if name == "kassa-web@.service":
        assert argv[1:] == ["serve", "--no-worker", "--host", "127.0.0.1", "--port", "%i"]
    if name == "kassa-worker.service":
        assert argv[1:] == ["worker"]


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units were only parsed")
    kassa = str(Path(sys.executable).with_name("kassa"))  # verify wants an executable that exists
    for name in UNITS:
        (tmp_path / name).write_text((DEPLOY / name).read_text().replace(INSTALLED_KASSA, kassa))
    shutil.copy(tmp_path / "kassa-web@.service", tmp_path / "kassa-web@8001.service")
    checked = ["kassa-migrate.service", "kassa-worker.service", "kassa-web@8001.service"]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / n) for n in checked)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "kassa-" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def env_lines() -> list[tuple[str, str, bool]]:
    """(name, value, active) for each `KASSA_X=value` line of the example, commented out or not;
    quotes around a value are removed as systemd's EnvironmentFile does."""
    found = []
    for line in (DEPLOY / "kassa.env.example").read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?(KASSA_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            value = match[3]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found.append((match[2], value, match[1] is None))
    return found


def test_the_env_example_names_only_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = env_lines()
    assert {"KASSA_DATABASE_URL", "KASSA_SECRET_KEY_FILE", "KASSA_OLD_SECRET_KEYS", "KASSA_BASE_URL"} <= {
        name for name, _, _ in lines
    }
    for name, _, _ in lines:
        assert name.removeprefix("KASSA_").lower() in Settings.model_fields, f"{name} is not a setting"
    for name in [n for n in os.environ if n.startswith("KASSA_")]:
        monkeypatch.delenv(name)
    for name, value, active in lines:
        if active:
            monkeypatch.setenv(name, value)
    settings = load_settings()  # the example is valid as it stands
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.mail_from == "Kassa <payments@example.com>"
    (old,) = [value for name, value, _ in lines if name == "KASSA_OLD_SECRET_KEYS"]
    assert json.loads(old) == ["the previous key"]  # a JSON array, once the quotes are gone


def test_the_nginx_example_balances_and_forwards() -> None:
    text = (DEPLOY / "nginx.conf.example").read_text()
    upstream = re.search(r"upstream kassa_web \{(.*?)\}", text, re.S)
    assert upstream is not None
    assert len(re.findall(r"^\s*server 127\.0\.0\.1:80\d\d\b", upstream[1], re.M)) >= 2
    for directive in (
        "proxy_pass http://kassa_web;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $host;",
    ):
        assert directive in text


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [
        (m[1].upper(), m[2].strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)
        if not m[0].lstrip().startswith("#")
    ]


def test_the_dockerfile_runs_kassa_as_a_user() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert any(i == "RUN" and 'pip install ".[redis]"' in a for i, a in steps)  # shared rate limits
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = json.loads(next(a for i, a in steps if i == "ENTRYPOINT"))
    command = json.loads(next(a for i, a in steps if i == "CMD"))
    assert entrypoint == ["kassa"] and command[0] == "serve"
    assert_kassa_command(command)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"**/kassa-secret.key", "**/*.db"} <= set(ignored)


@pytest.mark.slow
def test_the_image_builds() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: the Dockerfile was only read, not built")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(
            f"docker cannot reach a daemon, the Dockerfile was not built: {info.stderr.strip()[:200]}"
        )
    tag = f"kassa-deploy-test:{uuid.uuid4().hex[:12]}"
    build = subprocess.run(
        [docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800
    )
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        shown = subprocess.run(
            [docker, "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=120
        )
        assert shown.returncode == 0 and "serve" in shown.stdout, shown.stdout + shown.stderr
        uid = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert uid.stdout.strip() not in ("", "0"), uid.stdout + uid.stderr
    finally:
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, timeout=120)

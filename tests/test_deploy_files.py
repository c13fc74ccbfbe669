"""The ways to run the service start the same processes: the Procfile (``make run``, honcho), the
systemd units for hosts without containers, and the compose file. No Docker engine runs here, so
the container files are checked against the Procfile, which the smoke test runs for real."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, command in (line.split(": ", 1) for line in lines if line)}


def without_options(argv: list[str], *options: str) -> list[str]:
    """The command with the named options (and their values) left out."""
    kept, skip = [], False
    for part in argv:
        if skip:
            skip = False
        elif part in options:
            skip = True
        else:
            kept.append(part)
    return kept


def test_each_systemd_unit_runs_its_procfile_process_from_the_virtualenv():
    for name, argv in procfile().items():
        unit = (ROOT / "deploy" / "systemd" / f"telemetry-{name}.service").read_text()
        command = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1))

        assert command[0] == f"/opt/telemetry/.venv/bin/{argv[0]}"
        # The Procfile keeps the worker to one process for a laptop; a host uses its cores.
        assert command[1:] == without_options(argv[1:], "--concurrency")


def test_compose_runs_the_procfile_processes_and_migrates_first():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    image_command = ["python", "-m", "telemetry.server"]  # the Dockerfile's CMD

    assert procfile()["web"] == image_command and "command" not in services["web"]
    for name in ("worker", "beat", "rollups"):
        assert services[name]["command"] == without_options(procfile()[name], "--concurrency")
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert 'CMD ["python", "-m", "telemetry.server"]' in (ROOT / "Dockerfile").read_text()

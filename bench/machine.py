"""The machine a run was measured on: CPU, cores, memory, OS, Python, the temp file system.

Read from /proc and the standard library only; a field that cannot be read is "unknown" rather
than an error, so a benchmark never fails for want of a description.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import signal
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Machine:
    date: str
    cpu_model: str
    logical_cpus: int
    usable_cpus: int
    physical_cores: str
    cpu_quota: str
    ram_gib: float
    os: str
    kernel: str
    python: str
    load_average: str
    work_dir: str
    file_system: str
    libraries: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"date:        {self.date}",
            f"cpu:         {self.cpu_model}; {self.logical_cpus} logical CPUs "
            f"({self.usable_cpus} usable, physical cores {self.physical_cores}, "
            f"cgroup quota {self.cpu_quota})",
            f"memory:      {self.ram_gib:.1f} GiB",
            f"load:        {self.load_average} (1, 5, 15 min averages)",
            f"os:          {self.os}, kernel {self.kernel}",
            f"python:      {self.python}",
            f"work dir:    {self.work_dir} on {self.file_system}",
            f"libraries:   {self.libraries}",
        ]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def installed_env(work_dir: Path) -> dict[str, str]:
    """The environment for a child `python` that runs as an installed package does: bytecode
    compiled once (into a cache under `work_dir`) and then read, even where the caller has
    PYTHONDONTWRITEBYTECODE set. Without it every command would compile the gateway's sources
    again, and the figures would measure the compiler."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work_dir / "pycache")
    return env


def stop_daemon(daemon: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    """Stop a daemon the benchmark started: SIGTERM, then a kill after `seconds`."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def describe(work_dir: Path) -> Machine:
    """Describe this machine and the file system holding `work_dir`."""
    return Machine(
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        cpu_model=_cpu_model(),
        logical_cpus=os.cpu_count() or 0,
        usable_cpus=len(os.sched_getaffinity(0)),
        physical_cores=_physical_cores(),
        cpu_quota=_cpu_quota(),
        ram_gib=_mem_total_kib() / (1 << 20),
        os=_os_name(),
        kernel=platform.release(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        load_average=f"{load_average()} at the start",
        work_dir=str(work_dir),
        file_system=file_system_of(work_dir),
        libraries=_libraries(),
    )


def file_system_of(path: Path) -> str:
    """'TYPE (DEVICE at MOUNT)' of the mount holding `path`, from /proc/self/mounts."""
    target = str(path.resolve())
    best: tuple[str, str, str] | None = None
    for fields in _read_fields("/proc/self/mounts"):
        if len(fields) < 3:
            continue
        device, mount, fstype = fields[0], _unescape(fields[1]), fields[2]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= len(best[1])):
            best = (device, mount, fstype)
    if best is None:
        return UNKNOWN
    return f"{best[2]} ({best[0]} at {best[1]})"


def _cpu_model() -> str:
    for fields in _read_lines("/proc/cpuinfo"):
        key, _, value = fields.partition(":")
        if key.strip() in ("model name", "Processor", "cpu model"):
            return value.strip()
    return platform.processor() or UNKNOWN


def _physical_cores() -> str:
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in _read_lines("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    return str(len(cores)) if cores else UNKNOWN


def _cpu_quota() -> str:
    lines = _read_lines("/sys/fs/cgroup/cpu.max")
    if not lines:
        return UNKNOWN
    quota, _, period = lines[0].partition(" ")
    if quota == "max":
        return "none"
    try:
        return f"{int(quota) / int(period):.2f} CPUs"
    except ValueError:
        return UNKNOWN


def _mem_total_kib() -> int:
    for line in _read_lines("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    for line in _read_lines("/etc/os-release"):
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system() or UNKNOWN


def _libraries() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    versions = []
    for name in ("cryptography", "pyzipper", "SQLAlchemy"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} {UNKNOWN}")
    versions.append(backend.openssl_version_text())
    versions.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(versions)


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _read_fields(path: str) -> list[list[str]]:
    return [line.split() for line in _read_lines(path)]


def _unescape(mount: str) -> str:
    # /proc/self/mounts writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        mount = mount.replace(code, char)
    return mount

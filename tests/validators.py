"""External validators for DICOM objects the project writes.

``dciodvfy`` (David Clunie's dicom3tools, Debian package ``dicom3tools``)
checks an object against its IOD, modules and attribute rules. It prints one
finding per line on stderr, as ``Error - ...`` / ``Warning - ...`` (some lines
name the element first: ``(0x0021,0x118a)  ?  - Warning - ...``), plus the
IOD name it selected; it exits 1 when it found errors, 0 otherwise, and
aborts (SIGABRT) on some objects it cannot parse (32-bit pixel data).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"

_FINDING = re.compile(r"\b(Error|Warning) - ")


def dciodvfy_available() -> bool:
    return os.access(DCIODVFY, os.X_OK)


def dciodvfy(path, timeout: float = 120) -> tuple[list[str], list[str]]:
    """Run dciodvfy on ``path``: (errors, warnings), each a list of messages.

    A message keeps the element prefix dciodvfy gave it (without the
    ``Error - ``/``Warning - `` marker). Raises RuntimeError when dciodvfy
    crashes or its exit status disagrees with what was parsed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    r = subprocess.run([DCIODVFY, path], check=False, capture_output=True, text=True, errors="replace", timeout=timeout)
    out = (r.stderr + "\n" + r.stdout).splitlines()
    errors: list[str] = []
    warnings: list[str] = []
    for line in out:
        m = _FINDING.search(line)
        if not m:
            continue  # the IOD name, blank lines
        prefix = line[: m.start()].rstrip(" -")
        msg = line[m.end() :].strip()
        if prefix and not prefix.isalnum():  # an element tag, not a glued IOD name
            msg = f"{prefix} - {msg}"
        (errors if m.group(1) == "Error" else warnings).append(msg)
    if r.returncode not in (0, 1) or (r.returncode == 1) != bool(errors):
        tail = "\n".join(out[-20:])
        raise RuntimeError(f"dciodvfy failed on {path} (exit {r.returncode}, {len(errors)} errors parsed):\n{tail}")
    return errors, warnings

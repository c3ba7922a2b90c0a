"""The code's shape: dependencies run one way, and the core never loads napari or Qt.

    dicom/  <-  layers/  <-  api, web  <-  _qt/  <-  cli, _reader (npe2 manifest)

Checked twice: statically (every import statement, also those inside functions)
and at run time (a fresh interpreter imports the napari-free modules and reads
a study; napari, Qt and vispy stay unloaded).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_dcm"
GUI = ("napari", "qtpy", "vispy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")

# layer -> what it may import from napari_dcm (besides itself); None: anything
LAYERS = {
    "napari_dcm.errors": set(),
    "napari_dcm.dicom": {"napari_dcm.errors"},
    "napari_dcm.layers": {"napari_dcm.errors", "napari_dcm.dicom"},
    "napari_dcm.api": {"napari_dcm.errors", "napari_dcm.dicom", "napari_dcm.layers"},
    "napari_dcm.web": {"napari_dcm.errors", "napari_dcm.dicom", "napari_dcm.layers"},
    "napari_dcm.pacs": {"napari_dcm.errors", "napari_dcm.dicom", "napari_dcm.layers", "napari_dcm.api"},
    "napari_dcm._notify": {"napari_dcm.dicom"},
    "napari_dcm._qt": {
        "napari_dcm.errors",
        "napari_dcm.dicom",
        "napari_dcm.layers",
        "napari_dcm.api",
        "napari_dcm.web",
        "napari_dcm.pacs",
        "napari_dcm._notify",
    },
}
NAPARI_FREE = (
    "napari_dcm.errors",
    "napari_dcm.dicom",
    "napari_dcm.layers",
    "napari_dcm.api",
    "napari_dcm.web",
    "napari_dcm.pacs",
)


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), path, is_pkg


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_pkg else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from . import x" imports a module
    return out


def _layer_of(module: str) -> str | None:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


MODULES = list(_modules())


@pytest.mark.parametrize("name,path,is_pkg", MODULES, ids=[m[0] for m in MODULES])
def test_dependencies_run_one_way(name, path, is_pkg):
    layer = _layer_of(name)
    if layer is None:
        return  # the top (cli, _reader, _writer, _sample, the package's public face): may import anything
    allowed = LAYERS[layer] | {layer}
    bad = []
    for imp in _imports(name, path, is_pkg):
        if imp == "napari_dcm" or imp.startswith("napari_dcm."):
            if imp in ("napari_dcm", "napari_dcm.__version__") or imp.startswith("napari_dcm._version"):
                continue  # the version string
            target = _layer_of(imp)
            if target is None or target not in allowed:
                bad.append(imp)  # a higher layer, or the top (cli, _reader, ...)
        elif layer in NAPARI_FREE and imp.split(".")[0] in GUI:
            bad.append(imp)
    assert not bad, f"{name} ({layer}) imports {sorted(bad)}"


def test_core_and_api_never_load_napari_or_qt(sample_study):
    code = f"""
import importlib, json, pkgutil, sys
import napari_dcm, napari_dcm.api, napari_dcm.web, napari_dcm.pacs, napari_dcm.dicom, napari_dcm.layers
for pkg in (napari_dcm.dicom, napari_dcm.layers):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
layers = napari_dcm.read({str(sample_study)!r})
layers[0].data[3].compute()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {GUI!r})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the napari-free modules loaded {loaded}"

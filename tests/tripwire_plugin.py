"""A pydicom decoding plugin that records that it was called and fails.

tests/test_robust.py adds it to pydicom's decoders to check that napari-dcm only ever
calls the plugins it names (pydicom's default order reaches GDCM when python-gdcm is
installed, and GDCM aborts the process on inconsistent input).
"""

from __future__ import annotations

CALLS: list[str] = []
DECODER_DEPENDENCIES: dict[str, tuple[str, ...]] = {}


def is_available(uid: str) -> bool:
    return True


def decode(src: bytes, runner) -> bytes:
    CALLS.append(str(runner.transfer_syntax))
    raise RuntimeError("tripwire plugin called")

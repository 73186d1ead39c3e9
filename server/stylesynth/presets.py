"""Presets: every parameter saved to, and loaded from, a small JSON file in a presets folder.

A preset is ``{"format": "stylesynth-preset", "version": 1, "params": {name: value, ...}}``. Names are checked
(letters, digits, ``-`` and ``_``, up to 64) so a preset name can never reach outside the folder. Files are written
atomically (temporary file, then rename). Loading refuses unknown parameters and non-finite values before anything
changes; out-of-range values are clamped with notes (the engine's :meth:`~stylesynth.engine.Engine.set_values`).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from stylesynth.params import PARAMS

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
FORMAT = "stylesynth-preset"
VERSION = 1
MAX_BYTES = 64 * 1024


class PresetError(ValueError):
    """A preset name, file or content was refused; the message says which and why."""


def check_name(name) -> str:
    """The name if valid, else :class:`PresetError` saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PresetError(f"preset name {name!r} refused: use 1-64 letters, digits, '-' or '_'")
    return name


class PresetStore:
    """Presets in one folder.

    Parameters
    ----------
    folder : Path or str
        Where ``<name>.json`` files live; created on first save.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if NAME_PATTERN.fullmatch(p.stem))

    def save(self, name: str, values: dict) -> Path:
        """Write ``values`` (``{param name: value}``, e.g. ``state.as_dict()``) as preset ``name``."""
        path = self.path(name)
        unknown = [k for k in values if k not in PARAMS]
        if unknown:
            raise PresetError(f"cannot save unknown parameters {unknown}")
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "version": VERSION, "params": values}, indent=2, allow_nan=False)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a preset is an ordinary user file
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load(self, name: str) -> dict:
        """The ``{param name: value}`` of preset ``name``; :class:`PresetError` with the reason if the file is
        missing, too large, not JSON, of another format, or names parameters that do not exist."""
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none saved yet"
            raise PresetError(f"no preset {name!r} in {self.folder} (presets: {known})")
        if path.stat().st_size > MAX_BYTES:
            raise PresetError(f"preset {name!r} is larger than {MAX_BYTES} bytes: not a preset file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PresetError(f"preset {name!r} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("params"), dict):
            raise PresetError(f"preset {name!r} is not a {FORMAT} file (needs format and a params object)")
        if data.get("version") != VERSION:
            raise PresetError(f"preset {name!r} has version {data.get('version')!r}; this server reads {VERSION}")
        params = data["params"]
        unknown = [k for k in params if k not in PARAMS]
        if unknown:
            raise PresetError(f"preset {name!r} has unknown parameters: {', '.join(map(str, unknown))}")
        return params

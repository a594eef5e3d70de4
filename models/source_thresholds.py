"""Per-source thresholds: which threshold judges a window, and an artifact copy that carries new ones.

An artifact's `threshold.per_source` maps a window's `source` to its own threshold. `applied` is the one rule,
used by `Detector.score` (so by the worker, the Python API and evaluate): a window whose source has an entry is
judged by it (scope "source"); every other window, and one without a source, by the global value (scope
"global"). `write_copy` writes an artifact with other per-source thresholds (`validate --per-source
--write-artifact`), sealed and verified like any artifact, so the worker's hot reload accepts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from anomstream.errors import ArtifactError
from anomstream.models import artifact

GLOBAL, SOURCE = "global", "source"


def applied(global_value: float, per_source: dict[str, float], sources: Sequence[str | None] | None, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The threshold (float64) and its scope for each of `n` windows with these `sources` (None: no sources)."""
    if not per_source or sources is None:
        return np.full(n, global_value, dtype=np.float64), (GLOBAL,) * n
    if len(sources) != n:
        raise ValueError(f"{len(sources)} sources for {n} windows: give one per window (None for a window without one).")
    found = [None if source is None else per_source.get(source) for source in sources]
    thresholds = np.fromiter((global_value if value is None else value for value in found), np.float64, n)
    return thresholds, tuple(GLOBAL if value is None else SOURCE for value in found)


def write_copy(model: str | os.PathLike[str], out: str | os.PathLike[str], per_source: dict[str, float]) -> artifact.Metadata:
    """The artifact `model` written to `out` with `per_source` as its per-source thresholds (replacing any it had).

    `out` may be `model` itself (only model.json changes, atomically) or a new, empty or artifact directory: the
    model files are copied first, model.json last, so a worker watching `out` never reads a half-written artifact.
    The version gains a `+src-<8 hex>` suffix naming the thresholds, so verdicts tell the two artifacts apart.
    """
    model, out = Path(model), Path(out)
    metadata = artifact.verify(model)
    raw = json.loads((model / artifact.META_FILE).read_text())
    thresholds = {str(source): float(value) for source, value in sorted(per_source.items())}
    raw["threshold"] = {**raw["threshold"], "per_source": thresholds}
    base = metadata.version.split("+src-")[0]
    tag = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:8]
    raw["version"] = f"{base}+src-{tag}" if thresholds else base
    raw.pop("digest", None)
    try:
        artifact.Metadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArtifactError(f"{out} was not written: {where}: {first['msg']}.") from None
    same = out.exists() and out.resolve() == model.resolve()
    if not same:
        if out.is_dir() and any(out.iterdir()) and not (out / artifact.META_FILE).exists():
            raise ArtifactError(f"{out} is a directory with files but no {artifact.META_FILE}: write the copy to a new or empty directory.")
        out.mkdir(parents=True, exist_ok=True)
        for record in (metadata.model_file, metadata.litert_file):
            if record is not None:
                staged = out / f".new.{record.file}"
                shutil.copyfile(model / record.file, staged)
                staged.replace(out / record.file)
    partial = out / (artifact.META_FILE + ".partial")
    partial.write_text(json.dumps(artifact.sealed(raw), indent=2) + "\n")
    partial.replace(out / artifact.META_FILE)
    return artifact.verify(out)

"""Sources that are not labeling exports: generated phantoms (``synthetic:N[:SIZE[:SEED]]``) and datasets already in
the Hugging Face format (a Hub dataset ID or a ``save_to_disk`` folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from .collect import png_bytes, to_dataset

__all__ = ["load_hub", "load_synthetic", "synthetic_dataset"]


def synthetic_dataset(n: int, size: int = 256, seed: int = 0, config: Any = None) -> datasets.Dataset:
    """``n`` phantoms (seeds ``seed`` .. ``seed + n - 1``) as a Dataset with the standard columns."""
    from ..synthetic import generate_phantom

    rows = []
    for s in range(seed, seed + n):
        ph = generate_phantom(s, (size, size), config)
        rows.append(
            {
                "image": {"bytes": png_bytes(ph.image), "path": None},
                "mask": {"bytes": png_bytes(ph.lesion_mask), "path": None},
                "group": f"case_{s:05d}",
                "source": "synthetic",
                "file": f"phantom_{s:05d}.png",
            }
        )
    return to_dataset(rows)


def load_synthetic(spec: str) -> datasets.DatasetDict:
    parts = spec.split(":")
    try:
        n = int(parts[1])
        size = int(parts[2]) if len(parts) > 2 else 256
        seed = int(parts[3]) if len(parts) > 3 else 0
    except (IndexError, ValueError) as exc:
        raise ValueError(f"synthetic source must look like 'synthetic:N[:SIZE[:SEED]]', got {spec!r}") from exc
    return datasets.DatasetDict({"train": synthetic_dataset(n, size, seed)})


def load_hub(source: str, revision: str | None = None) -> datasets.DatasetDict:
    path = Path(source)
    try:
        loaded = (
            datasets.load_from_disk(str(path)) if path.exists() else datasets.load_dataset(source, revision=revision)
        )
    except Exception as exc:
        raise ValueError(f"cannot load dataset {source!r}: {exc.__class__.__name__}: {exc}") from exc
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    for split, ds in loaded.items():
        missing = {"image", "mask"} - set(ds.column_names)
        if missing:
            raise ValueError(
                f"dataset {source!r} split {split!r} lacks columns {sorted(missing)}; has {ds.column_names}"
            )
        if "group" not in ds.column_names:
            ds = ds.add_column("group", [f"{split}_{i}" for i in range(len(ds))])
        if "source" not in ds.column_names:
            ds = ds.add_column("source", [source] * len(ds))
        loaded[split] = ds
    return loaded

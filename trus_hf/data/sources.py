"""Sources that are not labeling exports: generated phantoms (``synthetic:N[:SIZE[:SEED[:PRESET]]]``) and datasets
already in the Hugging Face format (a Hub dataset ID or a ``save_to_disk`` folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from .collect import mask_column, png_bytes, to_dataset

__all__ = ["PHANTOM_LABELS", "load_hub", "load_synthetic", "synthetic_dataset"]


PHANTOM_LABELS = ("gland", "lesion")


def synthetic_dataset(
    n: int, size: int | tuple[int, int] = 256, seed: int = 0, config: Any = None, labels: Sequence[str] | None = None
) -> datasets.Dataset:
    """``n`` phantoms (seeds ``seed`` .. ``seed + n - 1``) as a Dataset with the standard columns; ``config`` is a
    `PhantomConfig` or a preset name (``default``, ``clean``, ``hard``, ``shifted``). Without ``labels`` the
    ``mask`` column is the lesion; with ``labels`` (from ``gland``, ``lesion``) one ``mask_<label>`` column each."""
    from ..synthetic import generate_phantom

    unknown = set(labels or ()) - set(PHANTOM_LABELS)
    if unknown:
        raise ValueError(f"phantoms know the labels {PHANTOM_LABELS}, not {sorted(unknown)}")
    rows = []
    for s in range(seed, seed + n):
        ph = generate_phantom(s, size, config)
        masks = {"gland": ph.gland_mask, "lesion": ph.lesion_mask}
        columns = (
            {mask_column(lb): {"bytes": png_bytes(masks[lb]), "path": None} for lb in labels}
            if labels
            else {"mask": {"bytes": png_bytes(ph.lesion_mask), "path": None}}
        )
        rows.append(
            {
                "image": {"bytes": png_bytes(ph.image), "path": None},
                **columns,
                "group": f"case_{s:05d}",
                "source": "synthetic",
                "file": f"phantom_{s:05d}.png",
            }
        )
    return to_dataset(rows, labels=labels)


def load_synthetic(spec: str, labels: Sequence[str] | None = None) -> datasets.DatasetDict:
    """``synthetic:N[:SIZE[:SEED[:PRESET]]]``: N phantoms of SIZE x SIZE pixels from seed SEED, preset PRESET."""
    parts = spec.split(":")
    try:
        n = int(parts[1])
        size = int(parts[2]) if len(parts) > 2 else 256
        seed = int(parts[3]) if len(parts) > 3 else 0
        preset = parts[4] if len(parts) > 4 else "default"
        if len(parts) > 5:
            raise ValueError("too many fields")
    except (IndexError, ValueError) as exc:
        raise ValueError(f"synthetic source must look like 'synthetic:N[:SIZE[:SEED[:PRESET]]]', got {spec!r}") from exc
    return datasets.DatasetDict({"train": synthetic_dataset(n, size, seed, preset, labels)})


def load_hub(source: str, revision: str | None = None, labels: Sequence[str] | None = None) -> datasets.DatasetDict:
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
        has_label_columns = any(c.startswith("mask_") for c in ds.column_names)
        masks = {mask_column(lb) for lb in labels} if labels else set() if has_label_columns else {"mask"}
        missing = ({"image"} | masks) - set(ds.column_names)
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

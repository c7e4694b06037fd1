"""Training data: the dataset split for a run, the processor's deterministic half cached once per image, and the
torch `Dataset` that augments and normalises per step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset

from ..arrays import IGNORE, mask_to_binary, to_gray_float
from ..augment import build_augmentations
from ..data import group_train_test_split, load_dataset, mask_column
from ..image_processing import Geometry, TrusImageProcessor
from .arguments import TrainingArguments

__all__ = [
    "TorchSegmentationDataset",
    "cached_preprocess",
    "geometries_of",
    "label_columns",
    "load_training_data",
    "original_masks",
    "split_for_training",
]


def load_training_data(args: TrainingArguments, labels: Sequence[str] = ("lesion",)) -> datasets.DatasetDict:
    """The run's dataset; several labels load one ``mask_<label>`` column each (``--label_map``,
    ``--missing_labels``)."""
    extra = [args.fold_column] if args.fold_column else []
    multi = {}
    if len(labels) > 1:
        multi = {"labels": list(labels), "label_map": args.label_map_dict(), "missing_labels": args.missing_dict()}
    return load_dataset(
        args.data,
        format=args.data_format,
        strict=not args.skip_invalid,
        mask_suffix=args.mask_suffix,
        extra_columns=extra,
        **multi,
    )


def split_for_training(
    dsd: datasets.DatasetDict, args: TrainingArguments
) -> tuple[datasets.Dataset, datasets.Dataset, datasets.Dataset | None]:
    """(train, validation, test): the dataset's own splits, a held-out ``test_fold``, and a group-aware validation
    split when the dataset has none."""
    full = dsd["train"]
    test = dsd.get("test")
    if args.test_fold is not None:
        if args.fold_column is None or args.fold_column not in full.column_names:
            raise ValueError(f"--test-fold needs --fold-column naming a dataset column; columns: {full.column_names}")
        values = [str(v) for v in full[args.fold_column]]
        test = full.select([i for i, v in enumerate(values) if v == str(args.test_fold)])
        full = full.select([i for i, v in enumerate(values) if v != str(args.test_fold)])
        if len(test) == 0:
            raise ValueError(f"no rows with {args.fold_column} == {args.test_fold!r}; values: {sorted(set(values))}")
    if "validation" in dsd:
        return full, dsd["validation"], test
    split = group_train_test_split(full, test_size=args.val_fraction, seed=args.seed)
    return split["train"], split["test"], test


def label_columns(ds: datasets.Dataset, labels: Sequence[str]) -> list[str]:
    """The mask columns that train ``labels``: ``mask`` for a one-label model on a one-mask dataset, else one
    ``mask_<label>`` column per label (a clear error naming what the dataset has)."""
    if len(labels) == 1 and "mask" in ds.column_names and mask_column(labels[0]) not in ds.column_names:
        return ["mask"]
    columns = [mask_column(lb) for lb in labels]
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"the model's labels {list(labels)} need the dataset columns {columns}; it has "
            f"{ds.column_names} (load it with labels=... or --labels)"
        )
    return columns


def _target(row_masks: Sequence[Any], processor: TrusImageProcessor, geo, stacked: bool) -> np.ndarray:
    if not stacked:
        return processor.prepare_mask(mask_to_binary(row_masks[0]), geo)
    shape = (geo.orig_height, geo.orig_width)
    stack = np.stack([np.full(shape, IGNORE, np.uint8) if m is None else mask_to_binary(m) for m in row_masks])
    return processor.prepare_mask(stack, geo)


def cached_preprocess(
    ds: datasets.Dataset,
    processor: TrusImageProcessor,
    cache_dir: str | Path | None,
    labels: Sequence[str] = ("lesion",),
) -> datasets.Dataset:
    """Run the processor's deterministic half once per image (``x``: float16 HxW; ``y``: uint8 HxW for one mask
    column, (L, H, W) for ``mask_<label>`` columns with `IGNORE` where a label is not annotated; ``geometry``: JSON
    of the image's `Geometry`), cached on disk.

    The cache file name is a hash of the dataset fingerprint, the processor settings and the labels, so a changed
    setting never reuses a stale cache.
    """
    ch, cw = processor.canvas_size
    columns = label_columns(ds, labels)
    stacked = columns != ["mask"]
    y_feature = datasets.Array3D((len(columns), ch, cw), "uint8") if stacked else datasets.Array2D((ch, cw), "uint8")
    features = datasets.Features(
        {
            "x": datasets.Array2D((ch, cw), "float16"),
            "y": y_feature,
            "geometry": datasets.Value("string"),
            "group": datasets.Value("string"),
            "file": datasets.Value("string"),
        }
    )

    def fn(batch):
        xs, ys, geos = [], [], []
        for i, img in enumerate(batch["image"]):
            x, geo = processor.prepare_gray(to_gray_float(img))
            xs.append(x.astype(np.float16))
            ys.append(_target([batch[c][i] for c in columns], processor, geo, stacked))
            geos.append(json.dumps(geo.to_dict()))
        return {"x": xs, "y": ys, "geometry": geos, "group": batch["group"], "file": batch["file"]}

    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        key = hashlib.sha256(
            (ds._fingerprint + processor.to_json_string() + "geometry" + "|".join(columns)).encode()
        ).hexdigest()[:16]
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        kwargs = {"cache_file_name": str(Path(cache_dir) / f"pre-{key}.arrow"), "load_from_cache_file": True}
    return ds.map(
        fn,
        batched=True,
        batch_size=8,
        remove_columns=ds.column_names,
        features=features,
        desc="preprocessing (cached)",
        **kwargs,
    )


def geometries_of(pre: datasets.Dataset) -> list[Geometry]:
    """The `Geometry` of every image of a `cached_preprocess` output."""
    return [Geometry(**json.loads(g)) for g in pre["geometry"]]


def original_masks(ds: datasets.Dataset, labels: Sequence[str] = ("lesion",)) -> list[Any]:
    """Every ground truth of ``ds`` at its original size: a uint8 0/1 mask per image for a ``mask`` column, else a
    dict {label: mask or None (not annotated)}, as `SegmentationPipeline.postprocess` takes them."""
    columns = label_columns(ds, labels)
    rows = ds.select_columns([*columns, "file"])
    if columns == ["mask"]:
        return [mask_to_binary(np.asarray(r["mask"]), name=f"mask of {r['file']}") for r in rows]
    return [
        {
            lb: None if r[c] is None else mask_to_binary(np.asarray(r[c]), name=f"{lb} mask of {r['file']}")
            for lb, c in zip(labels, columns)
        }
        for r in rows
    ]


class TorchSegmentationDataset(Dataset):
    """Items ``pixel_values`` (C, H, W), ``labels`` (H, W) or (L, H, W) and ``index`` from a `cached_preprocess`
    output, augmented (albumentations) when ``augment``."""

    def __init__(
        self, ds: datasets.Dataset, processor: TrusImageProcessor, augment: bool, seed: int, strength: float = 1.0
    ):
        self.ds = ds.with_format("numpy", columns=["x", "y"])
        self.processor = processor
        self.aug = build_augmentations(seed=seed, strength=strength) if augment else None

    def reseed(self, seed: int) -> None:
        """Restart the augmentation's random draws from ``seed`` (each epoch, each loader worker)."""
        if self.aug is not None:
            self.aug.set_random_seed(seed)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.ds[int(i)]
        x, y = row["x"].astype(np.float32), row["y"].astype(np.uint8)
        if self.aug is not None:
            # label stacks (L, H, W) go through albumentations as one multi-channel mask (H, W, L)
            out = self.aug(image=x, mask=y if y.ndim == 2 else np.ascontiguousarray(y.transpose(1, 2, 0)))
            x, augmented = np.clip(out["image"], 0.0, 1.0), out["mask"]
            if y.ndim == 3:  # a label not annotated on this image stays unannotated where the transform filled in
                augmented = np.ascontiguousarray(augmented.transpose(2, 0, 1))
                augmented[(y == IGNORE).all(axis=(1, 2))] = IGNORE
            y = augmented
        return {
            "pixel_values": torch.from_numpy(self.processor.finalize(x)),
            "labels": torch.from_numpy(y.astype(np.int64)),
            "index": torch.tensor(int(i)),
        }

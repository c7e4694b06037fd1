"""Training data: the dataset split for a run, the processor's deterministic half cached once per image, and the
torch `Dataset` that augments and normalises per step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset

from ..arrays import mask_to_binary, to_gray_float
from ..augment import build_augmentations
from ..data import group_train_test_split, load_dataset
from ..image_processing import Geometry, TrusImageProcessor
from .arguments import TrainingArguments

__all__ = [
    "TorchSegmentationDataset",
    "cached_preprocess",
    "geometries_of",
    "load_training_data",
    "original_masks",
    "split_for_training",
]


def load_training_data(args: TrainingArguments) -> datasets.DatasetDict:
    extra = [args.fold_column] if args.fold_column else []
    return load_dataset(
        args.data,
        format=args.data_format,
        strict=not args.skip_invalid,
        mask_suffix=args.mask_suffix,
        extra_columns=extra,
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


def cached_preprocess(
    ds: datasets.Dataset, processor: TrusImageProcessor, cache_dir: str | Path | None
) -> datasets.Dataset:
    """Run the processor's deterministic half once per image (``x``: float16 HxW, ``y``: uint8 HxW, ``geometry``:
    JSON of the image's `Geometry`), cached on disk.

    The cache file name is a hash of the dataset fingerprint and the processor settings, so a changed setting never
    reuses a stale cache.
    """
    ch, cw = processor.canvas_size
    features = datasets.Features(
        {
            "x": datasets.Array2D((ch, cw), "float16"),
            "y": datasets.Array2D((ch, cw), "uint8"),
            "geometry": datasets.Value("string"),
            "group": datasets.Value("string"),
            "file": datasets.Value("string"),
        }
    )

    def fn(batch):
        xs, ys, geos = [], [], []
        for img, msk in zip(batch["image"], batch["mask"]):
            x, geo = processor.prepare_gray(to_gray_float(img))
            xs.append(x.astype(np.float16))
            ys.append(processor.prepare_mask(mask_to_binary(msk), geo))
            geos.append(json.dumps(geo.to_dict()))
        return {"x": xs, "y": ys, "geometry": geos, "group": batch["group"], "file": batch["file"]}

    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        key = hashlib.sha256((ds._fingerprint + processor.to_json_string() + "geometry").encode()).hexdigest()[:16]
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


def original_masks(ds: datasets.Dataset) -> list[np.ndarray]:
    """Every ground-truth mask of ``ds`` at its original size (uint8 0/1)."""
    return [
        mask_to_binary(np.asarray(item["mask"]), name=f"mask of {item.get('file', i)}")
        for i, item in enumerate(ds.select_columns(["mask", "file"]))
    ]


class TorchSegmentationDataset(Dataset):
    """Items ``pixel_values`` (C, H, W), ``labels`` (H, W) and ``index`` from a `cached_preprocess` output, augmented
    (albumentations) when ``augment``."""

    def __init__(self, ds: datasets.Dataset, processor: TrusImageProcessor, augment: bool, seed: int):
        self.ds = ds.with_format("numpy", columns=["x", "y"])
        self.processor = processor
        self.aug = build_augmentations(seed=seed) if augment else None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.ds[int(i)]
        x, y = row["x"].astype(np.float32), row["y"].astype(np.uint8)
        if self.aug is not None:
            out = self.aug(image=x, mask=y)
            x, y = np.clip(out["image"], 0.0, 1.0), out["mask"]
        return {
            "pixel_values": torch.from_numpy(self.processor.finalize(x)),
            "labels": torch.from_numpy(y.astype(np.int64)),
            "index": torch.tensor(int(i)),
        }

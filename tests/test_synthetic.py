import json

import datasets
import numpy as np
import pytest

from trus_hf.cli import main
from trus_hf.synthetic import PhantomConfig, generate_phantom


def test_phantom_is_deterministic_and_consistent():
    a, b = generate_phantom(7, (200, 240)), generate_phantom(7, (200, 240))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.lesion_mask, b.lesion_mask)
    assert a.image.shape == (200, 240) and a.image.dtype == np.uint8
    assert set(np.unique(a.lesion_mask)) <= {0, 1}
    # lesions lie inside the gland, the gland inside the fan; outside the fan the image is black
    assert not (a.lesion_mask & (1 - a.gland_mask)).any()
    assert not (a.gland_mask & (1 - a.fan_mask)).any()
    assert a.image[a.fan_mask == 0].max() == 0
    assert not np.array_equal(a.image, generate_phantom(8, (200, 240)).image)


def test_lesions_are_hypoechoic_and_empty_masks_occur():
    counts = [generate_phantom(s, (128, 128)).n_lesions for s in range(30)]
    assert 0 in counts and max(counts) == 2
    ph = next(p for p in (generate_phantom(s, (256, 256)) for s in range(30)) if p.lesion_mask.sum() > 200)
    gland_only = ph.gland_mask.astype(bool) & ~ph.lesion_mask.astype(bool)
    assert ph.image[ph.lesion_mask.astype(bool)].mean() < 0.8 * ph.image[gland_only].mean()
    faint = generate_phantom(ph.seed, (256, 256), PhantomConfig(lesion_contrast=0.95))
    assert faint.image[ph.lesion_mask.astype(bool)].mean() > ph.image[ph.lesion_mask.astype(bool)].mean()


def test_synth_cli_writes_an_imagefolder(tmp_path):
    assert main(["synth", "--n", "3", "--out", str(tmp_path / "d"), "--size", "64"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "d" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((tmp_path / "d" / r["mask_file_name"]).is_file() for r in rows)
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "d"), split="train")
    assert len(ds) == 3 and "group" in ds.column_names
    # refuses to overwrite without --overwrite
    assert main(["synth", "--n", "1", "--out", str(tmp_path / "d"), "--size", "64"]) == 2


def test_size_validation():
    with pytest.raises(ValueError, match="at least 16x16"):
        generate_phantom(0, (8, 8))

"""A folder with ``metadata.jsonl`` (``file_name``, ``mask_file_name``, ``group``), as ``trus-hf synth`` writes and
datasets' imagefolder reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .collect import Candidate, DataReport

__all__ = ["imagefolder_candidates"]


def imagefolder_candidates(
    root: Path, report: DataReport, extra_columns: Sequence[str] = (), labels: Sequence[str] | None = None
) -> dict[str, list[Candidate]]:
    """Several labels: ``mask_<label>_file_name`` keys per line (a key absent: that label is not annotated)."""
    meta = root / "metadata.jsonl"
    items = []
    for ln, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            img = root / rec["file_name"]
            mask = root / rec["mask_file_name"] if rec.get("mask_file_name") else None
        except (json.JSONDecodeError, KeyError) as exc:
            report.skip(f"{meta}:{ln}", f"bad metadata line ({exc})")
            continue
        if not img.is_file():
            report.skip(img, "listed in metadata.jsonl but missing")
            continue
        if mask is not None and not mask.is_file():
            report.skip(mask, "mask listed in metadata.jsonl but missing")
            continue
        label_masks = None
        if labels:
            label_masks = {
                lb: root / rec[f"mask_{lb}_file_name"] if rec.get(f"mask_{lb}_file_name") else None for lb in labels
            }
            missing = [p for p in label_masks.values() if p is not None and not p.is_file()]
            if missing:
                report.skip(missing[0], "mask listed in metadata.jsonl but missing")
                continue
        extra = {c: rec.get(c) for c in extra_columns}
        source = str(rec.get("source", "imagefolder"))
        items.append(Candidate(img, mask, str(rec.get("group", img.stem)), extra, source, label_masks))
    return {"train": items}

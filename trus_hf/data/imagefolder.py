"""A folder with ``metadata.jsonl`` (``file_name``, ``mask_file_name``, ``group``), as ``trus-hf synth`` writes and
datasets' imagefolder reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .collect import Candidate, DataReport

__all__ = ["imagefolder_candidates"]


def imagefolder_candidates(
    root: Path, report: DataReport, extra_columns: Sequence[str] = ()
) -> dict[str, list[Candidate]]:
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
        items.append(
            Candidate(
                img,
                mask,
                str(rec.get("group", img.stem)),
                {c: rec.get(c) for c in extra_columns},
                source=str(rec.get("source", "imagefolder")),
            )
        )
    return {"train": items}

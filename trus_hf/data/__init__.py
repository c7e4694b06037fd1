"""Labeled data as a `datasets.DatasetDict` with columns ``image`` (Image), ``mask`` (Image, values 0/1), ``group``,
``source`` and ``file``; group-aware splits and k-fold.

Sources (`load_dataset` picks by ``format="auto"``), one module each:

- ``folder`` (`folder`): ``images/`` and ``masks/`` paired by file stem (mask suffix configurable, e.g. ``_mask``);
  optional ``train/``, ``valid/``, ``test/`` subfolders become splits; root CSV files (e.g. ``manifest.csv``) provide
  ``group`` and any ``extra_columns`` keyed by file name or ID; ``cvat-masks`` is the same layout as CVAT exports it;
- ``coco`` (`coco`): COCO segmentation JSON as Roboflow/CVAT export it (polygons and RLE, several annotations per
  image merged, optional category filter), one ``_annotations.coco.json`` per split folder or a single JSON file;
- ``roboflow-masks`` (`roboflow`): Roboflow's semantic-mask export (``*_mask.png`` beside each image and
  ``_classes.csv``);
- ``yolo-seg`` (`yolo`): YOLO segmentation labels (``images/`` + ``labels/*.txt`` with normalised polygons);
- ``imagefolder`` (`imagefolder`): a folder with ``metadata.jsonl`` (``file_name``, ``mask_file_name``, ``group``), as
  ``trus-hf synth`` writes and ``datasets``' imagefolder reads;
- ``synthetic`` and ``hub`` (`sources`): ``synthetic:N`` or ``synthetic:N:SIZE`` generates phantoms; a Hub dataset ID
  or a ``save_to_disk`` folder.

Several labels (``labels=["gland", "lesion"]``): one ``mask_<label>`` column each instead of ``mask``; COCO,
Roboflow and YOLO categories map to labels (``label_map``), folders hold one ``masks_<label>/`` folder per label or
indexed masks (``label_values``); a label without annotation on an image is an explicit choice (``missing_labels``:
``error`` lists the files, ``ignore`` stores None, left out of the loss, ``empty`` stores an empty mask).

Every loader feeds one collector (`collect`) that validates each pair (readable, sizes match, mask values {0,1} or
{0,255}). With ``strict=True`` (default) any problem raises one `ValueError` listing every offending file; with
``strict=False`` bad items are skipped and listed in the returned `DataReport`. Nothing is dropped silently.

Example:
    >>> from trus_hf.data import load_dataset
    >>> ds = load_dataset("synthetic:4:64")
    >>> ds["train"].column_names
    ['image', 'mask', 'group', 'source', 'file']
"""

from .collect import FEATURES, MISSING_POLICIES, DataReport, dataset_labels, mask_column
from .loading import FORMATS, load_dataset, load_dataset_with_report, parse_label_map, parse_missing_labels
from .sources import PHANTOM_LABELS, synthetic_dataset
from .splits import group_kfold, group_train_test_split

__all__ = [
    "FEATURES",
    "FORMATS",
    "MISSING_POLICIES",
    "PHANTOM_LABELS",
    "DataReport",
    "dataset_labels",
    "group_kfold",
    "group_train_test_split",
    "load_dataset",
    "load_dataset_with_report",
    "mask_column",
    "parse_label_map",
    "parse_missing_labels",
    "synthetic_dataset",
]

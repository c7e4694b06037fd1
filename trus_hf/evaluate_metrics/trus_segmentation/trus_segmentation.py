"""`evaluate` metric module for binary segmentation: mean and micro IoU/Dice with trus-hf's empty-mask convention.

Loads offline from the installed package (no Hub download):

    >>> import evaluate
    >>> from trus_hf.metrics import EVALUATE_MODULE_PATH
    >>> metric = evaluate.load(EVALUATE_MODULE_PATH)
    >>> metric.compute(predictions=[[[1, 0], [0, 0]]], references=[[[1, 1], [0, 0]]])["mean_iou"]
    0.5
"""

import datasets
import evaluate
import numpy as np

from trus_hf.metrics import aggregate, binary_metrics

_DESCRIPTION = (
    "Per-image IoU, Dice, precision and recall of binary masks, averaged over images, plus pooled (micro) IoU/Dice."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of 2-D binary masks (0/1).
    references: list of 2-D binary masks (0/1), same shapes as predictions.
Returns:
    mean_iou, mean_dice, mean_precision, mean_recall, micro_iou, micro_dice, n_images.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TrusSegmentation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("uint8"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("uint8"))),
                }
            ),
        )

    def _compute(self, predictions, references):
        per_image = [binary_metrics(np.asarray(p), np.asarray(r)) for p, r in zip(predictions, references)]
        return aggregate(per_image)

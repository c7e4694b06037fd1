"""trus-hf: prostate lesion segmentation on transrectal ultrasound, the Hugging Face way.

One processor (`TrusImageProcessor`), two architectures behind one contract (FPN and Segformer), one prediction path
(`SegmentationPipeline`), one save/load contract (`load_model` by folder or Hub ID).
"""

from .configuration import ARCHITECTURES, SEGFORMER_SIZES, TrusSegConfig
from .image_processing import Geometry, TrusImageProcessor
from .metrics import EVALUATE_MODULE_PATH, aggregate, binary_metrics
from .models import TrusFPN, TrusSegformer, TrusSegmentationModel, create_model, load_model
from .pipeline import SegmentationPipeline, SegmentationResult
from .transformers_integration import register as _register_with_transformers

_register_with_transformers()  # transformers' Auto classes and image-segmentation pipeline know trus-hf models

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "EVALUATE_MODULE_PATH",
    "SEGFORMER_SIZES",
    "Geometry",
    "SegmentationPipeline",
    "SegmentationResult",
    "TrusFPN",
    "TrusImageProcessor",
    "TrusSegConfig",
    "TrusSegformer",
    "TrusSegmentationModel",
    "__version__",
    "aggregate",
    "binary_metrics",
    "create_model",
    "load_model",
]

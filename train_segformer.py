"""Train SegformerForSemanticSegmentation (transformers, MiT b0..b5) on TRUS data.

python train_segformer.py --data DIR --segformer_size b2 --output_dir runs/segformer
accelerate launch train_segformer.py --data DIR --mixed_precision bf16   # several GPUs (DDP)
python train_segformer.py --help                                         # every option
"""

from trus_hf.training import main_train

if __name__ == "__main__":
    main_train("segformer")

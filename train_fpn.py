"""Train FPN (segmentation-models-pytorch, resnet152 encoder by default) on TRUS data.

python train_fpn.py --data DIR --output_dir runs/fpn            # CPU or one GPU
accelerate launch train_fpn.py --data DIR --mixed_precision bf16  # several GPUs (DDP)
python train_fpn.py --help                                       # every option
"""

from trus_hf.training import main_train

if __name__ == "__main__":
    main_train("fpn")

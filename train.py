"""Train GWNet (DAIN + ResNet-54) on batches made on the fly, after Sasaoka et al. (2023).

    python train.py --config configs/paper.yaml --out runs/paper [--resume] [--max-minutes 25]
                    [--max-steps N] [--device cuda|cpu] [key=value ...]     e.g. lr=5e-4 model.width=4
    torchrun --nproc_per_node=4 train.py --config configs/h100.yaml --out runs/ddp

The run itself lives in gwviz/training/ (config.py: the recipe and its checks; parts.py: step,
prefetcher, validator, metrics; loop.py: resume, DDP, checkpoints, and the full description).
"""
from gwviz.paths import run_cli
from gwviz.training.loop import main

if __name__ == "__main__":
    run_cli(main, "train.py")  # bad config/paths, divergence: a message, not a traceback

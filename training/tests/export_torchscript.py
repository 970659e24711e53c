"""Exports a small CNN as TorchScript for the torch backend's tests.

Run with the pinned PyTorch of scripts/install-torch.sh:

    .venv-torch/bin/python client/tests/export_torchscript.py OUT.pt --side 8 --classes 4

The module follows fedstake's contract for TorchScript models: it takes flat
features `[batch, side * side]` (float32) and returns logits `[batch, classes]`.
Its parameters have names (`conv.weight` `[4, 1, 3, 3]`, `conv.bias`,
`head.weight`, `head.bias`), which become the tensor names of the model's
layout, so the tests see a layout unlike the built-in networks'.
"""

import argparse

import torch
from torch import nn


class SmallCnn(nn.Module):
    """A 3x3 convolution with 4 channels, ReLU, 2x2 max pooling, a linear head."""

    def __init__(self, side: int, classes: int):
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4 * (side // 2) * (side // 2), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, self.side, self.side)
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(x.flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where to write the TorchScript file")
    parser.add_argument("--side", type=int, default=8, help="images are side x side")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialization")
    args = parser.parse_args()
    if args.side < 2 or args.side % 2:
        parser.error("--side must be even and at least 2")
    torch.manual_seed(args.seed)
    torch.jit.script(SmallCnn(args.side, args.classes)).save(args.out)


if __name__ == "__main__":
    main()

"""Models that edgefit must refuse with one clear line (used by test_cli_errors.py)."""

import torch
from torch import nn


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            return x * 2
        return x


class Sigmoidal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def data_dependent():
    return DataDependent()


def sigmoidal():
    return Sigmoidal()


def example_inputs():
    return (torch.randn(1, 3, 8, 8),)

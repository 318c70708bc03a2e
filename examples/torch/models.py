"""Small PyTorch models for initdiag's examples and tests (`initdiag probe --model models.py:mlp`).

Each factory returns a freshly built ``nn.Module`` with PyTorch's own default initialization, the
weights a model starts from when its author did nothing about init.
"""

import torch
from torch import nn


def mlp(width: int = 256, depth: int = 8, classes: int = 10, inputs: int = 784) -> nn.Module:
    """A ReLU MLP as PyTorch builds it: every Linear keeps its default init, U(±1/√fan_in), whose
    variance 1/(3·fan_in) is a sixth of what ReLU needs, so E[z²] falls ~6× per layer."""
    layers: list[nn.Module] = [nn.Linear(inputs, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU stages, global average pooling and a linear head (CIFAR-sized input)."""

    def __init__(self, channels: int = 16, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TokenClassifier(nn.Module):
    """Token ids → embedding → self-attention → mean over the sequence → linear head."""

    def __init__(self, vocab: int = 1000, dim: int = 64, heads: int = 4, classes: int = 10):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        h, _ = self.attn(x, x, x, need_weights=False)
        return self.head(self.norm(x + h).mean(dim=1))

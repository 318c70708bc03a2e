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


class Block(nn.Module):
    """A pre-LN transformer block as GPT-2 writes it: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.mlp_proj = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(dim, dim=2)
        q, k, v = (t.view(batch, seq, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        h = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(h.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.mlp_proj(self.act(self.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """A small GPT-2 with GPT-2's init (N(0, 0.02), residual projections 0.02/sqrt(2L), LayerNorm
    1 and 0) and, with ``bugs=True``, three init bugs seen in real code: block 2's second LayerNorm
    drawn from N(0, 0.02) (an init loop that matched every ``weight``), block 1 replaced after the
    init ran (it keeps PyTorch's defaults), and an untied output head added by a wrapper afterwards."""

    def __init__(self, vocab: int = 512, dim: int = 128, blocks: int = 4, heads: int = 4, seq: int = 64,
                 bugs: bool = True):  # fmt: skip
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(seq, dim)
        self.h = nn.ModuleList(Block(dim, heads) for _ in range(blocks))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("c_proj.weight", "mlp_proj.weight")):
                nn.init.normal_(p, 0.0, 0.02 / (2 * blocks) ** 0.5)
        if bugs:
            nn.init.normal_(self.h[2].ln_2.weight, 0.0, 0.02)
            self.h[1] = Block(dim, heads)
            self.lm_head = nn.Linear(dim, vocab, bias=False)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class TiedLM(nn.Module):
    """A small language model whose output head is tied to its token embedding, left at
    ``nn.Embedding``'s N(0, 1) default: the logits start with a std of about sqrt(dim) (a near
    one-hot softmax at init). GPT-2 draws the shared table from N(0, 0.02) instead."""

    def __init__(self, vocab: int = 1000, dim: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        return self.head(self.norm(x + torch.relu(self.mix(x))))

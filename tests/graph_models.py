"""Small versions of the networks the loss-landscape literature studies (test helpers).

ResNet-20 for CIFAR (He et al. 2016, section 4.2) with projection (option B) or
zero-pad/subsample (option A) shortcuts, a VGG-11-style net with batch norm and dropout,
a two-layer transformer encoder on token ids, and a module that calls one layer twice.
Widths are parameters so tests can keep them tiny.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, option: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.option = option
        self.pad = (cout - cin) // 2
        self.shortcut = nn.Sequential()
        if (stride != 1 or cin != cout) and option == "B":
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.down = stride != 1 or cin != cout

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.down and self.option == "A":
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)
        else:
            short = self.shortcut(x)
        out += short
        return F.relu(out)


class ResNet(nn.Module):
    """ResNet-6n+2 for 32x32 inputs; n=3 is ResNet-20."""

    def __init__(self, n: int = 3, width: int = 16, classes: int = 10, option: str = "B",
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers = []
        cin = width
        for stage, mult in enumerate((1, 2, 4)):
            cout = width * mult
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, option))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class VGG(nn.Module):
    """VGG-11 layout (8 convs, 5 max-pools) with batch norm and a dropout classifier."""

    CFG = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(cin, v * width, 3, padding=1), nn.BatchNorm2d(v * width),
                           nn.ReLU(inplace=True)]
                cin = v * width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(cin, 4 * width), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4 * width, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, causal: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(0.1)
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        a = self.attn(h, h, h, need_weights=False, is_causal=False)[0]
        x = x + self.drop(a)
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class Transformer(nn.Module):
    """Token ids -> embedding + position -> 2 pre-norm encoder layers -> mean -> head."""

    def __init__(self, vocab: int = 11, d: int = 8, heads: int = 2, ff: int = 16,
                 length: int = 5, classes: int = 3, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.1)
        self.layers = nn.ModuleList([EncoderLayer(d, heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=1))


class Reuse(nn.Module):
    """Named attributes, and a forward that applies ``hidden`` twice."""

    def __init__(self, d_in: int = 4, d: int = 6, classes: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.hidden = nn.Linear(d, d)
        self.act = nn.Tanh()
        self.out = nn.Linear(d, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        h = self.act(self.hidden(h))
        h = self.act(self.hidden(h)) * 0.5 + h
        return self.out(h)


def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine values."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            dt = m.running_mean.dtype
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=dt) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=dt) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=dt) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=dt) * 0.1)
    return module

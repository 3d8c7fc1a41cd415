"""Quickstart section: bring your own network with ``landscope.from_module``.

A small CIFAR-style ResNet (3 stages of one basic block, option-A zero-pad shortcuts,
batch norm), written as any PyTorch user would, is traced by the SDK into a ``graph``
architecture; the service builds it from that JSON alone with the module's own
parameter names. On 32 synthetic 3x16x16 images of 4 classes the job measures the
Hessian's top eigenvalues and the top eigenvalue of each layer's block, reported under
the module's paths (``layer2.0.conv1``, ...).
"""

from __future__ import annotations

import json
import pathlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import landscope


def _resnet():  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = (cout - cin) // 2
            self.stride = stride

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            short = x
            if self.stride != 1:  # option A: subsample and zero-pad the channels
                short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)

    class ResNet(nn.Module):
        def __init__(self, width: int = 4, classes: int = 4) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.layer1 = nn.Sequential(Block(width, width, 1))
            self.layer2 = nn.Sequential(Block(width, 2 * width, 2))
            self.layer3 = nn.Sequential(Block(2 * width, 4 * width, 2))
            self.fc = nn.Linear(4 * width, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))

    return ResNet()


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    try:
        import torch
    except ImportError:
        print("\n== from_module: skipped (needs `pip install landscope[torch]`)")
        return
    import landscope

    torch.manual_seed(0)
    net = _resnet().eval()
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (32,), generator=gen)
    means = torch.randn(4, 3, 16, 16, generator=gen)
    x = means[y] + 0.5 * torch.randn(32, 3, 16, 16, generator=gen)

    spec = landscope.from_module(net, x[:2])
    ops = [n["op"] for n in spec.architecture["nodes"]]
    print(f"\n== from_module: {type(net).__name__} -> graph of {len(ops)} nodes "
          f"({ops.count('conv2d')} conv2d, {ops.count('batchnorm2d')} batchnorm2d, "
          f"{ops.count('add')} add, {ops.count('pad')} pad), "
          f"{len(spec.weights)} bytes of weights")
    request = landscope.JobRequest(
        kind="hessian_spectrum",
        model=spec,  # the client uploads the weights once (content-addressed)
        data=landscope.inline_data(x, y),
        loss="cross_entropy",
        options={"top_k": 1, "bottom_k": 0, "blocks": True, "density_probes": 2,
                 "density_steps": 8},
        metadata={"example": "quickstart", "model": "resnet-from-module"},
    )
    job = client.jobs.submit(request)
    print(f"== hessian_spectrum of the traced ResNet ({job.id})")
    done = client.jobs.wait(job.id, progress=True, timeout=600)
    if done.status != "succeeded" or done.result is None:
        print(f"  job {done.status}: {done.error}")
        return
    res = done.result
    print(f"  loss {res['loss_value']}, top eigenvalue {res['top']['eigenvalues'][0]}")
    print("  per-layer blocks (the module's own paths):")
    for block in res.get("blocks") or []:
        print(f"    {block['name']:<16} {block['size']:>5} params   top eigenvalue "
              f"{block['top_eigenvalue']}")
    (outdir / "from_module_resnet.json").write_text(json.dumps(spec.architecture, indent=1))

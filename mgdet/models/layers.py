"""Small building blocks shared by necks and heads."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

#: Class-logit bias so that every anchor starts with probability 0.01 (Lin et al., focal loss).
PRIOR_PROB = 0.01
PRIOR_BIAS = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and state-dict keys) that, while training, normalises an input with one
    value per channel (``[1, C, 1, 1]``: a batch of one image whose feature map is 1 x 1, e.g. the last pyramid
    level at 64 px) with its running statistics, unchanged, instead of failing: a batch variance needs two values."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.dim() == 4 and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ConvBNReLU(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU (the authors' ``BasicConv``); ``relu=False`` drops the ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        relu: bool = True,
    ) -> None:
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, bias=False),
            BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def flatten_level(x: Tensor, per_location: int) -> Tensor:
    """[B, K*D, H, W] -> [B, H*W*K, D] (anchor order of :mod:`mgdet.anchors`)."""
    b = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(b, -1, per_location)

"""Read-noise models: what a voltmeter adds to each sample of a node voltage.

Each model is a frozen pydantic model, so the config *is* the model and a
calibration file round-trips through YAML.  Additive models implement
`sample(shape, t_s, generator, like)` returning one noise draw per sample;
models that transform the reading (quantization) implement `apply(values)`.
Every draw takes the crossbar's generator: same seed, same noise.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat
from torch import Tensor


class GaussianRead(BaseModel):
    """White Gaussian read noise, the paper's `V_samp = V_att + sigma dB_t`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["gaussian"] = "gaussian"
    sigma_v: NonNegativeFloat = Field(description="standard deviation of one sample (V)")

    def sample(self, shape: tuple[int, ...], t_s: Tensor, generator: torch.Generator, like: Tensor) -> Tensor:
        return self.sigma_v * torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


ReadNoise = Annotated[GaussianRead, Field(discriminator="kind")]


class ReadChain:
    """The composed read path of one crossbar: additive models, then transforms.

    When every model is Gaussian the mean of N samples is drawn exactly as
    `N(V, sigma^2/N)` at O(1) cost in N, and its sample standard deviation
    from the chi distribution; otherwise N samples are drawn explicitly.
    """

    def __init__(self, models: list[BaseModel]) -> None:
        self.models = [m for m in models if not (isinstance(m, GaussianRead) and m.sigma_v == 0.0)]

    def __repr__(self) -> str:
        return f"ReadChain({self.models!r})"

    @property
    def is_noiseless(self) -> bool:
        return not self.models

    @property
    def is_gaussian(self) -> bool:
        return all(isinstance(m, GaussianRead) for m in self.models)

    @property
    def sigma_v(self) -> float:
        """Total white-noise standard deviation of one sample (V)."""
        return math.sqrt(sum(m.sigma_v**2 for m in self.models if isinstance(m, GaussianRead)))

    def exact_mean(self, v: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Mean and sample std of n Gaussian reads of v, without drawing the n reads."""
        sigma = self.sigma_v
        mean = v + (sigma / math.sqrt(n)) * torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        if n == 1:
            return mean, torch.zeros_like(v)
        # (n-1) s^2 / sigma^2 ~ chi^2_{n-1}; Wilson-Hilferty's cube-of-normal form is
        # accurate to < 1e-3 in the quantiles for n >= 2 and costs one draw per node.
        k = n - 1
        z = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        chi2_over_k = (1.0 - 2.0 / (9 * k) + z * math.sqrt(2.0 / (9 * k))).clamp_min(0.0) ** 3
        return mean, sigma * chi2_over_k.sqrt()

    def samples(self, v: Tensor, n: int, t_s: Tensor, generator: torch.Generator) -> Tensor:
        """n explicit reads of v, shape (n, *v.shape)."""
        out = v.unsqueeze(0).expand(n, *v.shape).clone()
        for m in self.models:
            if hasattr(m, "sample"):
                out += m.sample(out.shape, t_s, generator, out)
        for m in self.models:
            if hasattr(m, "apply"):
                out = m.apply(out)
        return out

"""How classes map onto a network's output nodes, and output voltages back onto classes.

`one-hot`: one output node per class; the right class is nudged towards `target_v`
and the others towards `off_v`; the prediction is the node with the highest voltage.
`binary`: two classes on one output node (a board such as 8-4-1 has a single
output): class 1 is nudged towards `target_v`, class 0 towards `off_v`, and the
prediction is class 1 when the output exceeds their midpoint.  A negative `off_v`
keeps the targets centred on 0 V, where a hidden layer of `>= 0` and `<= 0` diodes
can reach both (with all targets >= 0, EP pulls the hidden biases down until the
`>= 0` diodes stop conducting and learning stops).  `target_v` is in the
topology's v_unit, so a station whose nudge source is limited to 0.5 V uses 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class Readout:
    kind: Literal["one-hot", "binary"] = "one-hot"
    classes: int = 10
    target_v: float = 1.0
    off_v: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "binary" and self.classes != 2:
            raise ValueError(f"a binary readout needs 2 classes, got {self.classes}")

    @property
    def n_out(self) -> int:
        return 1 if self.kind == "binary" else self.classes

    def target(self, labels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Nudge targets `(B, n_out)` of these labels."""
        if self.kind == "binary":
            return self.off_v + labels.reshape(-1, 1).to(dtype) * (self.target_v - self.off_v)
        return self.off_v + torch.nn.functional.one_hot(labels, self.classes).to(dtype) * (self.target_v - self.off_v)

    def predict(self, output: Tensor) -> Tensor:
        """Predicted labels of output voltages `(B, n_out)`."""
        if self.kind == "binary":
            return (output[:, 0] > 0.5 * (self.target_v + self.off_v)).to(torch.int64)
        return output.argmax(dim=1)

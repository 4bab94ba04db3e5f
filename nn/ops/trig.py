"""cos and sin of the same angles in one op (Mamba3's data-dependent rotation needs both)."""

from __future__ import annotations

from minigrad import Function, Tensor


class CosSin(Function):
    def forward(self, x):
        self.c, self.s = self.xp.cos(x), self.xp.sin(x)
        return self.c, self.s

    def backward(self, gc, gs):
        # d cos = -sin dx, d sin = cos dx
        out = None
        if gc is not None:
            out = -gc * self.s
        if gs is not None:
            out = gs * self.c if out is None else out + gs * self.c
        return out


def cos_sin(x: Tensor) -> tuple[Tensor, Tensor]:
    return CosSin.apply(x)

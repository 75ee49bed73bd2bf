r"""The rules every feature reader applies to rows of raw features: which rows are
*missing* (all zeros or all NaN) and which values are usable (finite, within float32's
range), and how to say what makes a row unusable."""
import math

import torch
from torch import Tensor

_FLOAT32_MAX = torch.finfo(torch.float32).max


def missing_rows(x: Tensor) -> Tensor:
    r"""Bool ``[N]``: the rows of ``x`` ``[N, d]`` that are all zeros or all NaN."""
    return (x == 0).all(dim=1) | torch.isnan(x).all(dim=1)


def usable_values(x: Tensor) -> Tensor:
    r"""Bool, like ``x``: the values that are finite and within float32's range."""
    return x.abs() <= _FLOAT32_MAX  # false for NaN too


def describe_unusable(row: Tensor) -> str:
    r"""What makes a row that is not missing unusable, in words: ``NaN mixed with
    numbers``, ``only -inf``, ``inf/-inf mixed with numbers``, ``values beyond
    float32's range``."""
    found = [name for name, hit in (("NaN", torch.isnan(row)), ("inf", row == math.inf),
                                    ("-inf", row == -math.inf)) if bool(hit.any())]
    if not found:
        return "values beyond float32's range"
    kinds = "/".join(found)
    return f"{kinds} mixed with numbers" if bool(torch.isfinite(row).any()) else f"only {kinds}"

"""CSR lists: expansion to rows and shape checks."""
import pytest
import torch

from mmkgc_pyg.score_blocks import check_csr, csr_rows


def test_csr_rows_and_checks():
    ptr = torch.tensor([0, 2, 2, 5])
    assert csr_rows(ptr, 5).tolist() == [0, 0, 2, 2, 2]
    assert csr_rows(torch.zeros(1, dtype=torch.long), 0).numel() == 0
    check_csr(3, ptr, torch.zeros(5), "here")
    with pytest.raises(ValueError, match="ptr \\[4\\]"):
        check_csr(3, ptr[:3], torch.zeros(5), "here")

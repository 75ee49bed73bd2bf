"""MAT's generator: the formula, its noise, and drawing the noise alone."""
import torch

from mmkgc_pyg.nn import MAT, ModalityGenerator


def test_generator_formula():
    torch.manual_seed(0)
    g = ModalityGenerator(6, noise_channels=3, generator_channels=5)
    struct = torch.randn(4, 6)
    out = g(struct, torch.Generator().manual_seed(1))
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    hidden = torch.nn.functional.leaky_relu(g.lin1(torch.cat([noise, struct], -1)))
    torch.testing.assert_close(out, g.lin2(hidden))
    assert not torch.equal(out, g(struct, torch.Generator().manual_seed(2)))  # noise matters


def test_drawing_the_noise_alone_advances_the_stream_like_a_forward():
    mat = MAT(["textual", "visual"], 6, noise_channels=3, generator_channels=5)
    struct = torch.randn(4, 6)
    forward, skipped = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for g in mat.generators.values():
        g(struct, forward)
    mat.draw_noise(4, skipped)
    assert torch.equal(torch.rand(5, generator=forward), torch.rand(5, generator=skipped))

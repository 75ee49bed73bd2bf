"""MAT's modality generator: fake projected modality embeddings from structure."""
import torch
from torch import Tensor


class ModalityGenerator(torch.nn.Module):
    r"""Generates a fake projected embedding of one modality for entity :math:`e`:

    .. math::
        G_m(\mathbf{s}_e) = \mathbf{W}_2\,\mathrm{LeakyReLU}\big(
            \mathbf{W}_1 [\mathbf{z}; \mathbf{s}_e] + \mathbf{b}_1\big) + \mathbf{b}_2,
        \qquad \mathbf{z} \sim \mathcal{N}(0, \mathbf{I}_{d_z})

    Args:
        entity_channels (int): size :math:`D` of the real structural and projected
            entity vectors (twice PyG's ``hidden_channels`` for complex embeddings).
        noise_channels (int): size :math:`d_z` of the noise (64 in the paper).
        generator_channels (int): hidden size of the MLP (512 in the paper).
    """

    def __init__(self, entity_channels: int, noise_channels: int = 64,
                 generator_channels: int = 512):
        super().__init__()
        self.noise_channels = noise_channels
        self.lin1 = torch.nn.Linear(noise_channels + entity_channels, generator_channels)
        self.lin2 = torch.nn.Linear(generator_channels, entity_channels)
        self.reset_parameters()

    def reset_parameters(self):
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def draw_noise(self, num_entities: int, generator: torch.Generator = None,
                   device=None, dtype=None) -> Tensor:
        """The noise of ``num_entities`` fakes, ``[n, d_z]``."""
        device = device if device is not None else (generator.device if generator else None)
        return torch.randn(num_entities, self.noise_channels, generator=generator,
                           device=device, dtype=dtype)

    def forward(self, x_struct: Tensor, generator: torch.Generator = None) -> Tensor:
        noise = self.draw_noise(x_struct.size(0), generator, x_struct.device, x_struct.dtype)
        hidden = torch.nn.functional.leaky_relu(self.lin1(torch.cat([noise, x_struct], -1)))
        return self.lin2(hidden)

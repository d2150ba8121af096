"""An ANI-2x-style neural-network ensemble backend, built from scratch on TorchANI's AEV (SPEC §6).

AEV: ``torchani.AEVComputer.like_2x`` (radial cutoff 5.1 Å, 16 shifts, η_R 19.7; angular 3.5 Å,
ζ 14.1, 4 sections, 8 shifts, η_A 12.5; cosine cutoff). Per-element networks H 256-192-160-1,
C 224-192-160-1 (others as C), GELU; no pretrained weights anywhere. Self energies: a linear fit of
the training energies to the species counts. Each member trains on its own split with the loss of
Jung et al. (Eq. 3): Σ (E − E_ref)²/√N + α Σ |F − F_ref|²/N (α = 0.1), batches of 64, AdamW with
reduce-on-plateau, keeping the best validation-energy state and stopping early after ``patience``
epochs without improvement (the loop of ``hal.backends.torch_ensemble``). Units: eV, Å.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import torch  # noqa: E402
import torchani  # noqa: E402

from hal.backends.torch_ensemble import TorchBackend  # noqa: E402

HIDDEN = {"H": (256, 192, 160), "C": (224, 192, 160)}


class ANINet(torch.nn.Module):
    """AEV → per-element MLPs → atomic energies, summed, plus per-element self energies (eV)."""

    def __init__(self, elements: Sequence[str]) -> None:
        super().__init__()
        self.elements = tuple(elements)
        self.aev = torchani.AEVComputer.like_2x(num_species=len(self.elements))
        width = self.aev.out_dim
        self.nets = torch.nn.ModuleList()
        for el in self.elements:
            sizes = (width, *HIDDEN.get(el, HIDDEN["C"]), 1)
            layers: list[torch.nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [torch.nn.Linear(a, b), torch.nn.GELU()]
            self.nets.append(torch.nn.Sequential(*layers[:-1]))
        self.register_buffer("self_energies", torch.zeros(len(self.elements)))

    def forward(self, species: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
        """Energies (B,) of a padded batch (species −1 = padding)."""
        aev = self.aev(species, coordinates)
        atomic = torch.zeros(species.shape, dtype=aev.dtype, device=aev.device)
        for k, net in enumerate(self.nets):
            mask = species == k
            if mask.any():
                atomic[mask] = net(aev[mask]).squeeze(-1) + self.self_energies[k]
        return atomic.sum(dim=1)


class TorchANIBackend(TorchBackend):
    """Trains ANI ensembles (see the module docstring). ``device``: "cpu" or "cuda"."""

    name = "torchani"
    net_class = ANINet

    def __init__(self, elements: Sequence[str] = ("C", "H"), epochs: int = 300, batch_size: int = 64,
                 lr: float = 1e-3, alpha: float = 0.1, patience: int = 50, **kwargs) -> None:  # fmt: skip
        super().__init__(elements, epochs, batch_size, lr, patience, **kwargs)
        self.alpha = alpha

    def optimizer(self, net: ANINet):
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(self.patience // 4, 1))

    def loss(self, net: ANINet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss of Jung et al. Eq. 3, energy squared error per √N) of one batch, both batch means."""
        e, f = self.energy_forces(net, batch)
        e_term = (e - batch["energy"]) ** 2 / batch["n_atoms"].sqrt()
        f_term = ((f - batch["forces"]) ** 2).sum(dim=(1, 2)) / batch["n_atoms"]
        return (e_term + self.alpha * f_term).mean(), e_term.mean()

"""A SchNet ensemble backend on schnetpack's SchNet representation (SPEC §6), trained in the plain
PyTorch loop of ``hal.backends.torch_ensemble``.

SchNet: 128 features, 25 Gaussians, 3 interactions, cosine cutoff 5 Å; schnetpack's atomwise output
MLP (128-64-1, SiLU); per-element self energies from a linear fit to the training energies. Pairs:
every pair of atoms of a structure within the cutoff (molecules in vacuum, no cell). Loss
ρ MSE(E) + (1 − ρ) MSE(F), ρ = 0.1; Adam lr 5e-4, reduce-on-plateau factor 0.8, patience 5, min lr
1e-6; the best validation-loss state is kept. Units: eV, Å.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import torch
import torch.utils.data.dataloader

# Import shim, the only one: schnetpack 2.1.1 imports ``T_co`` from torch's dataloader module, which
# torch 2.13 no longer defines. schnetpack itself is installed without dependency resolution (its pin
# sympy<=1.12 would make pip swap torch 2.13 for a CUDA build; see scripts/setup.sh).
if not hasattr(torch.utils.data.dataloader, "T_co"):
    torch.utils.data.dataloader.T_co = typing.TypeVar("T_co", covariant=True)

import schnetpack as spk  # noqa: E402
from ase.data import atomic_numbers  # noqa: E402

from hal.backends.torch_ensemble import TorchBackend  # noqa: E402


class SchNetNet(torch.nn.Module):
    """schnetpack SchNet → atomwise MLP → atomic energies, summed, plus per-element self energies (eV)."""

    def __init__(self, elements: Sequence[str], n_atom_basis: int = 128, n_rbf: int = 25,
                 n_interactions: int = 3, cutoff: float = 5.0) -> None:  # fmt: skip
        super().__init__()
        self.elements, self.cutoff = tuple(elements), float(cutoff)
        self.representation = spk.representation.SchNet(
            n_atom_basis=n_atom_basis,
            n_interactions=n_interactions,
            radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
        )
        self.outnet = spk.nn.build_mlp(n_in=n_atom_basis, n_out=1, n_layers=2)
        self.register_buffer("numbers", torch.tensor([atomic_numbers[el] for el in self.elements]))
        self.register_buffer("self_energies", torch.zeros(len(self.elements)))

    def forward(self, species: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
        """Energies (B,) of a padded batch (species −1 = padding)."""
        real = species >= 0
        B, N = species.shape
        flat = torch.full((B, N), -1, dtype=torch.long, device=species.device)
        flat[real] = torch.arange(int(real.sum()), device=species.device)
        pairs = real[:, :, None] & real[:, None, :] & ~torch.eye(N, dtype=torch.bool, device=species.device)
        b, i, j = pairs.nonzero(as_tuple=True)
        r_ij = coordinates[b, j] - coordinates[b, i]
        near = (r_ij.detach() ** 2).sum(dim=1) < self.cutoff**2
        inputs = {
            spk.properties.Z: self.numbers[species[real]],
            spk.properties.Rij: r_ij[near],
            spk.properties.idx_i: flat[b[near], i[near]],
            spk.properties.idx_j: flat[b[near], j[near]],
        }
        x = self.representation(inputs)["scalar_representation"]
        atomic = self.outnet(x).squeeze(-1) + self.self_energies[species[real]]
        structure = real.nonzero(as_tuple=True)[0]
        return torch.zeros(B, dtype=atomic.dtype, device=atomic.device).index_add(0, structure, atomic)


class SchNetBackend(TorchBackend):
    """Trains SchNet ensembles (see the module docstring). ``device``: "cpu" or "cuda"."""

    name = "schnet"
    net_class = SchNetNet

    def __init__(self, elements: Sequence[str] = ("C", "H"), epochs: int = 300, batch_size: int = 64,
                 lr: float = 5e-4, rho: float = 0.1, patience: int = 50, n_atom_basis: int = 128,
                 n_rbf: int = 25, n_interactions: int = 3, cutoff: float = 5.0, **kwargs) -> None:  # fmt: skip
        super().__init__(elements, epochs, batch_size, lr, patience, **kwargs)
        self.rho = rho
        self.shape = {"n_atom_basis": n_atom_basis, "n_rbf": n_rbf, "n_interactions": n_interactions,
                      "cutoff": cutoff}  # fmt: skip

    @property
    def net_kwargs(self) -> dict:
        return {"elements": self.elements, **self.shape}

    def optimizer(self, net: SchNetNet):
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.8, patience=5, min_lr=1e-6)

    def loss(self, net: SchNetNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """ρ MSE(E) + (1 − ρ) MSE(F) (eV², (eV/Å)² per component of real atoms); the loss twice."""
        e, f = self.energy_forces(net, batch)
        mse_e = ((e - batch["energy"]) ** 2).mean()
        mse_f = ((f - batch["forces"]) ** 2).sum() / (3 * batch["n_atoms"].sum())
        loss = self.rho * mse_e + (1 - self.rho) * mse_f
        return loss, loss

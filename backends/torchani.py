"""An ANI-2x-style neural-network ensemble backend, built from scratch on TorchANI's AEV (SPEC §6).

AEV: ``torchani.AEVComputer.like_2x`` (radial cutoff 5.1 Å, 16 shifts, η_R 19.7; angular 3.5 Å,
ζ 14.1, 4 sections, 8 shifts, η_A 12.5; cosine cutoff). Per-element networks H 256-192-160-1,
C 224-192-160-1 (others as C), GELU; no pretrained weights anywhere. Self energies: a linear fit of
the training energies to the species counts. Each member trains on its own split with the loss of
Jung et al. (Eq. 3): Σ (E − E_ref)²/√N + α Σ |F − F_ref|²/N (α = 0.1), batches of 64, AdamW with
reduce-on-plateau, keeping the best validation-energy state and stopping early after ``patience``
epochs without improvement. Training checkpoints every epoch when given a ``checkpoint_dir`` and
resumes from it. The ensemble is a committee: member energies and forces by autograd, σ and its
gradient (HAL's bias force) by one more backward pass. Units: eV, Å.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchani  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.data import atomic_numbers  # noqa: E402
from tqdm import tqdm  # noqa: E402

from hal.backends.base import MemberCalculator, check_masks, member_errors  # noqa: E402
from hal.uncertainty import CommitteeResult  # noqa: E402

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


def _species(atoms: Atoms, index: dict[int, int]) -> np.ndarray:
    try:
        return np.array([index[z] for z in atoms.numbers])
    except KeyError as exc:
        raise ValueError(f"element {exc.args[0]} is not one of the backend's elements") from None


class ANIEnsemble:
    """Trained ANI members as a committee (see the module docstring); ``best`` by force MAE."""

    def __init__(self, members: Sequence[ANINet], best: int = 0, device: str = "cpu") -> None:
        self.members = [m.to(device).eval() for m in members]
        self.best, self.device = int(best), device
        self.elements = self.members[0].elements
        self._index = {atomic_numbers[el]: k for k, el in enumerate(self.elements)}
        self.dtype = next(self.members[0].parameters()).dtype

    @property
    def n_members(self) -> int:
        return len(self.members)

    def _inputs(self, atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.as_tensor(_species(atoms, self._index), device=self.device)[None]
        x = torch.tensor(atoms.positions, dtype=self.dtype, device=self.device)[None].requires_grad_(True)
        return s, x

    def evaluate_committee(self, atoms: Atoms, member_forces: bool = True) -> CommitteeResult:
        s, x = self._inputs(atoms)
        energies = torch.cat([m(s, x) for m in self.members])
        E = energies.detach().cpu().numpy().astype(float)
        if member_forces:
            rows = [torch.autograd.grad(e, x, retain_graph=k < len(energies) - 1)[0][0] for k, e in enumerate(energies)]
            forces = -torch.stack(rows).cpu().numpy().astype(float)
            return CommitteeResult(float(E.mean()), forces.mean(axis=0), None, E, forces, None)
        mean_f = -torch.autograd.grad(energies.mean(), x)[0][0].cpu().numpy().astype(float)
        return CommitteeResult(float(E.mean()), mean_f, None, E, None, None)

    def evaluate_bias(self, atoms: Atoms) -> tuple[CommitteeResult, np.ndarray, None]:
        """Mean model, member energies and ∇σ from two backward passes (no member forces)."""
        s, x = self._inputs(atoms)
        energies = torch.cat([m(s, x) for m in self.members])
        mean = energies.mean()
        sigma = torch.sqrt(((energies - mean) ** 2).mean())
        g_mean = torch.autograd.grad(mean, x, retain_graph=True)[0][0]
        g_sigma = torch.autograd.grad(sigma, x)[0][0]
        E = energies.detach().cpu().numpy().astype(float)
        res = CommitteeResult(float(E.mean()), -g_mean.cpu().numpy().astype(float), None, E, None, None)
        return res, g_sigma.cpu().numpy().astype(float), None

    def member_calculator(self, member: int) -> MemberCalculator:
        return MemberCalculator(self, member)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"elements": self.elements, "best": self.best, "dtype": str(self.dtype),
                    "members": [m.state_dict() for m in self.members]}, tmp)  # fmt: skip
        tmp.replace(path)
        return path


class TorchANIBackend:
    """Trains ``ANIEnsemble``s (see the module docstring). ``device``: "cpu" or "cuda"."""

    name = "torchani"

    def __init__(self, elements: Sequence[str] = ("C", "H"), epochs: int = 300, batch_size: int = 64,
                 lr: float = 1e-3, alpha: float = 0.1, patience: int = 50, device: str = "cpu",
                 dtype: torch.dtype = torch.float64, checkpoint_dir: str | Path | None = None,
                 progress: bool = False) -> None:  # fmt: skip
        self.elements, self.epochs, self.batch_size, self.lr = tuple(elements), epochs, batch_size, lr
        self.alpha, self.patience, self.device, self.dtype = alpha, patience, device, dtype
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self._index = {atomic_numbers[el]: k for k, el in enumerate(self.elements)}

    def _tensors(self, data: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        n = max(len(a) for a in data)
        species = np.full((len(data), n), -1)
        coords = np.zeros((len(data), n, 3))
        forces = np.zeros((len(data), n, 3))
        for k, a in enumerate(data):
            species[k, : len(a)] = _species(a, self._index)
            coords[k, : len(a)] = a.positions
            forces[k, : len(a)] = a.arrays["forces"]
        t = {"species": torch.as_tensor(species), "coordinates": torch.as_tensor(coords, dtype=self.dtype),
             "forces": torch.as_tensor(forces, dtype=self.dtype),
             "energy": torch.as_tensor([a.info["energy"] for a in data], dtype=self.dtype),
             "n_atoms": torch.as_tensor([len(a) for a in data], dtype=self.dtype)}  # fmt: skip
        return {k: v.to(self.device) for k, v in t.items()}

    def _self_energies(self, data: Sequence[Atoms]) -> torch.Tensor:
        counts = np.array([[np.sum(a.numbers == atomic_numbers[el]) for el in self.elements] for a in data], float)
        sol = np.linalg.lstsq(counts, np.array([a.info["energy"] for a in data]), rcond=None)[0]
        return torch.as_tensor(sol, dtype=self.dtype)

    def loss(self, net: ANINet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss of Jung et al. Eq. 3, energy squared error per √N) of one batch, both batch means."""
        x = batch["coordinates"].clone().requires_grad_(True)
        e = net(batch["species"], x)
        f = -torch.autograd.grad(e.sum(), x, create_graph=net.training)[0]
        e_term = (e - batch["energy"]) ** 2 / batch["n_atoms"].sqrt()
        f_term = ((f - batch["forces"]) ** 2).sum(dim=(1, 2)) / batch["n_atoms"]
        return (e_term + self.alpha * f_term).mean(), e_term.mean()

    def _train_member(self, member: int, train: dict, val: dict, e0: torch.Tensor, seed: int) -> ANINet:
        torch.manual_seed(seed)
        net = ANINet(self.elements).to(self.device, self.dtype)
        net.self_energies.copy_(e0)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(self.patience // 4, 1))
        start, best_val, best_state, stale = 0, np.inf, None, 0
        ckpt = self.checkpoint_dir / f"member_{member:02d}.pt" if self.checkpoint_dir else None
        if ckpt is not None and ckpt.exists():  # resume an interrupted training
            c = torch.load(ckpt, weights_only=False)
            net.load_state_dict(c["net"])
            opt.load_state_dict(c["opt"])
            sched.load_state_dict(c["sched"])
            start, best_val, best_state, stale = c["epoch"] + 1, c["best_val"], c["best_state"], c["stale"]
        n = len(train["energy"])
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(range(start, self.epochs), desc=f"member {member}", unit="epoch", disable=not self.progress)
        for epoch in bar:
            net.train()
            for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                opt.zero_grad()
                loss, _ = self.loss(net, {k: v[idx] for k, v in train.items()})
                loss.backward()
                opt.step()
            net.eval()
            val_e = self.loss(net, val if len(val["energy"]) else train)[1].item()
            sched.step(val_e)
            if val_e < best_val:
                best_val, stale = val_e, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            bar.set_postfix(val=f"{val_e:.2e}")
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "epoch": epoch, "best_val": best_val, "best_state": best_state, "stale": stale},
                           ckpt.with_suffix(".tmp"))  # fmt: skip
                ckpt.with_suffix(".tmp").replace(ckpt)
            if stale >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net.eval()

    def fit(self, data: Sequence[Atoms], train_masks: Sequence[np.ndarray], seed: int = 0) -> ANIEnsemble:
        masks = check_masks(data, train_masks)
        members = []
        for m, mask in enumerate(masks):
            train = [a for a, t in zip(data, mask) if t]
            val = [a for a, t in zip(data, mask) if not t]
            e0 = self._self_energies(train)
            val_t = self._tensors(val) if val else {k: v[:0] for k, v in self._tensors(train).items()}
            members.append(self._train_member(m, self._tensors(train), val_t, e0, seed * 1000 + m))
        if self.checkpoint_dir is not None:  # this fit is done: the next one starts afresh
            for f in self.checkpoint_dir.glob("member_*.pt"):
                f.unlink()
        ensemble = ANIEnsemble(members, 0, self.device)
        ensemble.best = int(np.argmin(member_errors(ensemble, data)[1]))
        return ensemble

    def load(self, path: str | Path) -> ANIEnsemble:
        c = torch.load(path, weights_only=False)
        dtype = getattr(torch, c["dtype"].replace("torch.", ""))
        members = []
        for state in c["members"]:
            net = ANINet(c["elements"]).to(dtype)
            net.load_state_dict(state)
            members.append(net)
        return ANIEnsemble(members, c["best"], self.device)

"""What the PyTorch backends share: an ensemble of trained networks as a committee, and the training
loop that makes one (own split per member, best validation state kept, early stopping, per-epoch
checkpoints that resume, warm starts from a previous ensemble). A network maps a padded batch
(species indices, −1 = padding; coordinates in Å) to energies in eV and has a ``self_energies``
buffer (eV per element). Forces, σ and σ's gradient (HAL's bias force) come from autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers
from tqdm import tqdm

from hal.backends.base import MemberCalculator, check_masks, member_errors
from hal.uncertainty import CommitteeResult


def species_indices(atoms: Atoms, index: dict[int, int]) -> np.ndarray:
    """Per-atom position of its element in the backend's element list; a clear error otherwise."""
    try:
        return np.array([index[z] for z in atoms.numbers])
    except KeyError as exc:
        raise ValueError(f"element {exc.args[0]} is not one of the backend's elements") from None


def element_index(elements: Sequence[str]) -> dict[int, int]:
    return {atomic_numbers[el]: k for k, el in enumerate(elements)}


class TorchEnsemble:
    """Trained members as a committee; ``best`` = the member of lowest force MAE (Jung et al.)."""

    def __init__(self, members: Sequence[torch.nn.Module], best: int = 0, device: str = "cpu",
                 net_kwargs: dict | None = None) -> None:  # fmt: skip
        self.members = [m.to(device).eval() for m in members]
        self.best, self.device = int(best), device
        self.net_kwargs = dict(net_kwargs or {})
        self.elements = tuple(self.members[0].elements)
        self._index = element_index(self.elements)
        self.dtype = next(self.members[0].parameters()).dtype

    @property
    def n_members(self) -> int:
        return len(self.members)

    def _inputs(self, atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.as_tensor(species_indices(atoms, self._index), device=self.device)[None]
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

    def evaluate_member(self, atoms: Atoms, member: int) -> tuple[np.ndarray, np.ndarray]:
        """All member energies (eV) and one member's forces (eV/Å): one backward pass, not one per member."""
        s, x = self._inputs(atoms)
        energies = torch.cat([m(s, x) for m in self.members])
        forces = -torch.autograd.grad(energies[member], x)[0][0]
        return energies.detach().cpu().numpy().astype(float), forces.cpu().numpy().astype(float)

    def evaluate_bias(
        self, atoms: Atoms, offsets: np.ndarray | None = None
    ) -> tuple[CommitteeResult, np.ndarray, None]:
        """Mean model, member energies and ∇σ from two backward passes (no member forces); ``offsets``
        (K,): member deviations subtracted before σ (see ``HALCalculator``)."""
        s, x = self._inputs(atoms)
        energies = torch.cat([m(s, x) for m in self.members])
        mean = energies.mean()
        shift = 0.0 if offsets is None else torch.as_tensor(offsets, dtype=energies.dtype, device=energies.device)
        sigma = torch.sqrt(((energies - mean - shift) ** 2).mean())
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
        torch.save({"net_kwargs": self.net_kwargs, "best": self.best, "dtype": str(self.dtype),
                    "members": [m.state_dict() for m in self.members]}, tmp)  # fmt: skip
        tmp.replace(path)
        return path


class TorchBackend:
    """Trains ``TorchEnsemble``s of ``net_class(**net_kwargs)``; subclasses give the network, the loss
    and the optimiser. ``device``: "cpu" or "cuda"; ``dtype``: float32 trains 3–4× faster than float64
    on a CPU; ``threads``: torch's CPU threads while training (default: leave torch's setting);
    ``init`` of ``fit``: warm start (HAL refits)."""

    name = "torch"
    net_class: type[torch.nn.Module]

    def __init__(self, elements: Sequence[str] = ("C", "H"), epochs: int = 300, batch_size: int = 64,
                 lr: float = 1e-3, patience: int = 50, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 checkpoint_dir: str | Path | None = None, progress: bool = False,
                 threads: int | None = None) -> None:  # fmt: skip
        self.elements, self.epochs, self.batch_size, self.lr = tuple(elements), epochs, batch_size, lr
        self.threads = threads
        self.patience, self.device, self.dtype = patience, device, dtype
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self._index = element_index(self.elements)

    @property
    def net_kwargs(self) -> dict:
        return {"elements": self.elements}

    def make_net(self) -> torch.nn.Module:
        return self.net_class(**self.net_kwargs).to(self.device, self.dtype)

    def loss(self, net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, validation metric) of one batch."""
        raise NotImplementedError

    def optimizer(
        self, net: torch.nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        raise NotImplementedError

    @staticmethod
    def energy_forces(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies (B,) and forces (B, N, 3) of a batch; differentiable while training."""
        x = batch["coordinates"].clone().requires_grad_(True)
        e = net(batch["species"], x)
        return e, -torch.autograd.grad(e.sum(), x, create_graph=net.training)[0]

    def _tensors(self, data: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        n = max(len(a) for a in data)
        species = np.full((len(data), n), -1)
        coords = np.zeros((len(data), n, 3))
        forces = np.zeros((len(data), n, 3))
        for k, a in enumerate(data):
            species[k, : len(a)] = species_indices(a, self._index)
            coords[k, : len(a)] = a.positions
            forces[k, : len(a)] = a.arrays["forces"]
        t = {"species": torch.as_tensor(species), "coordinates": torch.as_tensor(coords, dtype=self.dtype),
             "forces": torch.as_tensor(forces, dtype=self.dtype),
             "energy": torch.as_tensor([a.info["energy"] for a in data], dtype=self.dtype),
             "n_atoms": torch.as_tensor([len(a) for a in data], dtype=self.dtype)}  # fmt: skip
        return {k: v.to(self.device) for k, v in t.items()}

    def _self_energies(self, data: Sequence[Atoms]) -> torch.Tensor:
        """Per-element energies (eV) by least squares of the energies on the species counts."""
        counts = np.array([[np.sum(a.numbers == atomic_numbers[el]) for el in self.elements] for a in data], float)
        sol = np.linalg.lstsq(counts, np.array([a.info["energy"] for a in data]), rcond=None)[0]
        return torch.as_tensor(sol, dtype=self.dtype)

    def _train_member(self, member: int, train: dict, val: dict, e0: torch.Tensor, seed: int,
                      init: dict | None = None) -> torch.nn.Module:  # fmt: skip
        torch.manual_seed(seed)
        net = self.make_net()
        if init is not None:
            net.load_state_dict(init)
        else:
            net.self_energies.copy_(e0)
        opt, sched = self.optimizer(net)
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
        bar = tqdm(range(start, self.epochs), desc=f"{self.name} member {member}", unit="epoch",
                   disable=not self.progress)  # fmt: skip
        for epoch in bar:
            net.train()
            for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                opt.zero_grad()
                loss, _ = self.loss(net, {k: v[idx] for k, v in train.items()})
                loss.backward()
                opt.step()
            net.eval()
            val_metric = self.loss(net, val if len(val["energy"]) else train)[1].item()
            sched.step(val_metric)
            if val_metric < best_val:
                best_val, stale = val_metric, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            bar.set_postfix(val=f"{val_metric:.2e}")
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

    def fit(self, data: Sequence[Atoms], train_masks: Sequence[np.ndarray], seed: int = 0,
            init: TorchEnsemble | None = None) -> TorchEnsemble:  # fmt: skip
        """One member per mask, trained on its True configurations and validated on the rest."""
        masks = check_masks(data, train_masks)
        if init is not None and init.n_members != len(masks):
            raise ValueError(f"warm start from {init.n_members} members, but {len(masks)} masks given")
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads or threads)
        try:
            members = [self._fit_member(data, m, mask, seed, init) for m, mask in enumerate(masks)]
        finally:
            torch.set_num_threads(threads)
        if self.checkpoint_dir is not None:  # this fit is done: the next one starts afresh
            for f in self.checkpoint_dir.glob("member_*.pt"):
                f.unlink()
        ensemble = TorchEnsemble(members, 0, self.device, self.net_kwargs)
        ensemble.best = int(np.argmin(member_errors(ensemble, data)[1]))
        return ensemble

    def _fit_member(self, data: Sequence[Atoms], m: int, mask: np.ndarray, seed: int,
                    init: TorchEnsemble | None) -> torch.nn.Module:  # fmt: skip
        """Member m, trained on the True configurations of its mask and validated on the rest."""
        train = [a for a, t in zip(data, mask) if t]
        val = [a for a, t in zip(data, mask) if not t]
        val_t = self._tensors(val) if val else {k: v[:0] for k, v in self._tensors(train).items()}
        start = None if init is None else init.members[m].state_dict()
        return self._train_member(m, self._tensors(train), val_t, self._self_energies(train), seed * 1000 + m, start)

    def load(self, path: str | Path) -> TorchEnsemble:
        c = torch.load(path, weights_only=False, map_location=self.device)
        dtype = getattr(torch, c["dtype"].replace("torch.", ""))
        members = []
        for state in c["members"]:
            net = self.net_class(**c["net_kwargs"]).to(self.device, dtype)
            net.load_state_dict(state)
            members.append(net)
        return TorchEnsemble(members, c["best"], self.device, c["net_kwargs"])

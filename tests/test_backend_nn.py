"""The NN ensemble backends (TorchANI-style, SchNet): training lowers the loss, forces and the HAL bias
are derivatives of the (biased) energy, members differ more off the data, save → load is exact,
training resumes from its checkpoint and warm-starts from a previous ensemble."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT

import hal
from hal.loop.select import Splits
from tests.conftest import labelled

torch = pytest.importorskip("torch")


def _backend(name: str, **kwargs):
    if name == "torchani":
        pytest.importorskip("torchani")
        from hal.backends.torchani import TorchANIBackend

        return TorchANIBackend(**kwargs)
    schnet = pytest.importorskip("hal.backends.schnet")  # skips where schnetpack is not installed
    return schnet.SchNetBackend(**{"n_atom_basis": 32, "n_rbf": 10, "lr": 3e-3, **kwargs})  # small and quick


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    out = [molecule("C2H6") for _ in range(24)]
    for atoms in out:
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    return labelled(out, EMT)


@pytest.fixture(scope="module", params=["torchani", "schnet"])
def trained(request, data):
    torch.set_num_threads(1)
    backend = _backend(request.param, epochs=8, batch_size=8, patience=100)
    splits = Splits(3, seed=0).random(len(data), 0)
    return backend, backend.fit(data, splits.train, seed=1)


def test_training_lowers_the_loss(data, trained):
    backend, ens = trained
    batch = backend._tensors(data)
    untrained = backend.make_net()
    untrained.self_energies.copy_(backend._self_energies(data))
    before = backend.loss(untrained.eval(), batch)[0].item()
    after = min(backend.loss(m, batch)[0].item() for m in ens.members)
    assert after < 0.5 * before


def _fd(atoms, calc, i, k, h=1e-4):
    x = atoms.copy()
    x.calc = calc
    x.positions[i, k] += h
    ep = x.get_potential_energy()
    x.positions[i, k] -= 2 * h
    em = x.get_potential_energy()
    return -(ep - em) / (2 * h)


def test_forces_and_bias_are_derivatives(data, trained):
    _, ens = trained
    atoms = data[5].copy()
    res, (energies, forces) = ens.evaluate_committee(atoms), ens.evaluate_member(atoms, 1)
    assert np.allclose(energies, res.member_energies) and np.allclose(forces, res.member_forces[1])
    relative = hal.HALCalculator(ens, tau=0.3, force_uncertainty=False, reference=data[0])
    for calc in (ens.member_calculator(1), hal.HALCalculator(ens, tau=0.3, force_uncertainty=False), relative):
        atoms.calc = calc
        f = atoms.get_forces()
        for i, k in [(0, 0), (3, 1), (7, 2)]:
            assert f[i, k] == pytest.approx(_fd(atoms, calc, i, k), abs=1e-6)


def test_members_differ_more_off_the_data(data, trained, tmp_path):
    backend, ens = trained
    on = ens.evaluate_committee(data[0]).member_energies.std()
    stretched = data[0].copy()
    stretched.positions *= 1.4
    off = ens.evaluate_committee(stretched).member_energies.std()
    assert 0 < on < off
    again = backend.load(ens.save(tmp_path / "ensemble.pt"))
    r1, r2 = ens.evaluate_committee(stretched), again.evaluate_committee(stretched)
    assert again.best == ens.best
    assert np.array_equal(r1.member_energies, r2.member_energies) and np.array_equal(r1.member_forces, r2.member_forces)


@pytest.mark.parametrize("name", ["torchani", "schnet"])
def test_training_resumes_from_its_checkpoint(name, data, tmp_path):
    backend = _backend(name, epochs=2, batch_size=8, checkpoint_dir=tmp_path)
    t = backend._tensors(data)
    e0 = backend._self_energies(data)
    backend._train_member(0, t, t, e0, seed=3)
    saved = torch.load(tmp_path / "member_00.pt", weights_only=False)
    assert saved["epoch"] == 1
    longer = _backend(name, epochs=3, batch_size=8, checkpoint_dir=tmp_path)
    longer._train_member(0, t, t, e0, seed=3)
    assert torch.load(tmp_path / "member_00.pt", weights_only=False)["epoch"] == 2  # one more epoch, not three


@pytest.mark.parametrize("name", ["torchani", "schnet"])
def test_training_stops_after_patience_epochs_on_a_plateau(name, data, tmp_path):
    backend = _backend(name, epochs=50, batch_size=8, lr=0.0, patience=3, checkpoint_dir=tmp_path)  # flat: lr 0
    t = backend._tensors(data)
    backend._train_member(0, t, t, backend._self_energies(data), seed=3)
    assert torch.load(tmp_path / "member_00.pt", weights_only=False)["epoch"] == 3  # the best, then 3 stale


def test_warm_start_continues_from_the_given_members(data, trained):
    backend, ens = trained
    splits = Splits(3, seed=0).random(len(data), 0)
    batch = backend._tensors(data)
    again = backend.fit(data, splits.train, seed=2, init=ens)
    for old, new in zip(ens.members, again.members):
        assert backend.loss(new, batch)[0].item() <= 1.5 * backend.loss(old, batch)[0].item()
    cold = backend.make_net()
    cold.self_energies.copy_(backend._self_energies(data))
    assert max(backend.loss(m, batch)[0].item() for m in again.members) < backend.loss(cold.eval(), batch)[0].item()
    with pytest.raises(ValueError, match="warm start"):
        backend.fit(data, splits.train[:2], init=ens)


def test_float32_trains_on_the_given_threads_and_keeps_its_precision(data, tmp_path, monkeypatch):
    backend = _backend("torchani", epochs=2, batch_size=8, dtype=torch.float32, threads=2)
    seen = []
    train = type(backend)._train_member
    monkeypatch.setattr(backend, "_train_member", lambda *a: seen.append(torch.get_num_threads()) or train(backend, *a))
    torch.set_num_threads(1)
    ens = backend.fit(data, Splits(2, seed=0).random(len(data), 0).train, seed=1)
    assert seen == [2, 2] and torch.get_num_threads() == 1  # the training threads, then the caller's again
    assert ens.dtype == torch.float32 and backend.load(ens.save(tmp_path / "e.pt")).dtype == torch.float32
    wide = _backend("torchani", dtype=torch.float64).load(tmp_path / "e.pt")  # the same weights in float64
    wide.members = [m.double() for m in wide.members]
    wide.dtype = torch.float64
    r32, r64 = ens.evaluate_committee(data[3]), wide.evaluate_committee(data[3])
    assert r32.member_forces.dtype == np.float64  # numpy out, whatever the network's precision
    assert np.allclose(r32.member_energies, r64.member_energies, rtol=0, atol=1e-4)  # eV, float32 round-off
    assert np.allclose(r32.member_forces, r64.member_forces, rtol=0, atol=1e-3)  # eV/Å

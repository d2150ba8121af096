"""Basis sizes of hal's ACE basis for a few settings, beside ACE1 (published) and PACE (computed).

ACE1: the AlSi10 model of the HAL paper (ν = 2, total degree 13, pair degree 13) has 723 functions
(van der Oord et al. 2022, Fig. 4). PACE: python-ace's multispecies basis with the given
nradmax/lmax per order, counted with pyace (only when python-ace is installed).

    python benchmarks/basis_sizes.py [--quick]

Last line: ``alsi_nu2_deg13_vs_ace1: <hal size / 723>``.
"""

from __future__ import annotations

import argparse

from hal import ACEBasis

SETTINGS = [
    # label, elements, order, max_degree, pair_degree (None: max_degree[0]), PACE (nradmax, lmax) of equal size
    ("AlSi ν=2 D=13 (HAL paper, ACE1: 723)", ["Al", "Si"], 2, [13, 13], None, None),
    ("Si ν=3 D=12", ["Si"], 3, [12, 12, 12], None, None),
    ("Al ν=3 D=(20,18,15)", ["Al"], 3, [20, 18, 15], None, ([12, 6, 4], [0, 4, 3])),
    ("Al ν=4 D=(24,20,17,13)", ["Al"], 4, [24, 20, 17, 13], None, ([12, 8, 6], [0, 4, 3])),
    ("CH ν=3 D=(16,12,9)", ["C", "H"], 3, [16, 12, 9], None, ([15, 6, 3], [0, 2, 1])),
    ("CH ν=4 D=(15,11,9,6)", ["C", "H"], 4, [15, 11, 9, 6], None, ([15, 4, 3, 2], [0, 2, 1, 1])),
    ("CHO ν=3 D=(12,10,8)", ["C", "H", "O"], 3, [12, 10, 8], None, None),
]


def pace_functions(elements, nrad, lmax) -> int | None:
    try:
        from pace import pace_config, pace_size
    except ImportError:
        return None
    return pace_size(pace_config(elements, nrad, lmax))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first two settings only")
    args = ap.parse_args()
    rows = SETTINGS[:2] if args.quick else SETTINGS
    print("| setting | hal ACE | hal pair | hal total | DAG nodes | PACE (nradmax; lmax) |")
    print("|---|---:|---:|---:|---:|---|")
    sizes = {}
    for label, els, order, deg, pdeg, pace in rows:
        b = ACEBasis(els, order=order, max_degree=deg, r_cut=5.0, pair_degree=pdeg)
        sizes[label] = b.size
        ptxt = "–"
        if pace is not None:
            n = pace_functions(els, *pace)
            ptxt = f"{n} ({pace[0]}; {pace[1]})" if n is not None else "(python-ace not installed)"
        print(f"| {label} | {b.n_ace} | {b.n_pair} | {b.size} | {len(b._node_keys)} | {ptxt} |")
    print(f"alsi_nu2_deg13_vs_ace1: {sizes[SETTINGS[0][0]] / 723:.2f}")


if __name__ == "__main__":
    main()

"""numba settings shared by the ACE kernels.

``FASTMATH``: LLVM's fast-math flags without ``reassoc``, for the small per-pair functions (radials,
harmonics) that the kernels inline. With reassociation allowed there, a kernel compiled in this
process and the same kernel loaded from numba's cache rounded differently: a chaotic MD trajectory,
and whether HAL triggers on it, then depended on which process had compiled the kernels (Dask
workers against the local run). The kernels themselves keep full fast-math (their vectorised
reductions are worth ≈ 10 % on a 108-atom cell); fresh, cached and recompiled kernels then give
identical bits (checked for the basis, its forces, fits and HAL runs with and without f_i).
"""

FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}

"""numba settings shared by the ACE kernels.

``FASTMATH``: LLVM's fast-math flags without ``reassoc``. Reassociation lets LLVM reorder sums
(vectorised reductions), and then a kernel compiled in this process and the same kernel loaded from
numba's cache round differently: a chaotic MD trajectory, and whether HAL triggers on it, then
depended on which process had compiled the kernels (Dask workers against the local run). Without
it every process gives bit-identical results, at ≈ 3 % of the evaluation time.
"""

FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}

"""Fast kernels per backend: kernels.cpu (Numba), kernels.cuda (CUDA C via CuPy). Each registers itself
with minigrad.backend and is held by the tests to its xp-generic reference twin."""

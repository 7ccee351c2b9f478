"""The Numba backend: compiled per-group state machines for pattern, absence and
anomaly rules, and the kernels of decomposable numeric windows.
`cepdsl.backends.EXECUTORS` says which rule runs where.

Every kernel is specialised by dtype only (rule parameters are arguments) and
cached on disk, so loading many rules compiles each kernel once.
"""

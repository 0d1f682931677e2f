"""The parts of the ``lb`` element: Maglev table construction (:mod:`.maglev`), configuration
models (:mod:`.config`), backend slots and dispatch arrays (:mod:`.pool`) and the packet kernels
(:mod:`.kernels`, :mod:`.rewrite`, :mod:`.jit`)."""

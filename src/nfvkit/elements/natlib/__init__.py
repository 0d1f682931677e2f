"""The parts of the ``nat`` element (:mod:`nfvkit.elements.nat`): its configuration model
(:mod:`.config`), the external port allocator (:mod:`.alloc`), the mapping tables and their
upkeep (:mod:`.tables`), and the data path: the batch kernel (:mod:`.batch`), the per-packet
steps (:mod:`.kernels`), ICMP error translation (:mod:`.icmperr`) and in-place rewriting with
incremental checksums (:mod:`.rewrite`)."""

"""The parts of the ``nat`` element (:mod:`nfvkit.elements.nat`): its configuration model
(:mod:`.config`), the external port allocator (:mod:`.alloc`), the mapping tables and their
upkeep (:mod:`.tables`) and the translation kernels (:mod:`.kernels`)."""

"""The element library: batch-processing building blocks that VNFs are made of.

Each element lives in a module of its own and declares its ports, configuration model, drop
reasons and runtime handlers as class-level data; graphs wire elements together
(:mod:`nfvkit.graph`). :mod:`nfvkit.elements.registry` finds an element class by its type name.
"""

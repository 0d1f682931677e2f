"""Rules, automaton, scan kernel and alert log of the ``dpi`` element.

* :mod:`.syntax` -- Snort/Suricata-style rule text into rule mappings;
* :mod:`.model` -- the validated rule model (:class:`DpiRule`) and rule loading;
* :mod:`.automaton` -- the Aho–Corasick DFA over byte classes;
* :mod:`.compiler` -- rules into the flat tables the kernel reads;
* :mod:`.kernels` -- the Numba payload scan;
* :mod:`.alerts` -- alert counts and JSON lines.
"""

from nfvkit.elements.dpi_rules.automaton import Automaton, build_automaton
from nfvkit.elements.dpi_rules.compiler import CompiledRules, compile_dpi
from nfvkit.elements.dpi_rules.model import Content, DpiRule, load_rules

__all__ = [
    "Automaton",
    "CompiledRules",
    "Content",
    "DpiRule",
    "build_automaton",
    "compile_dpi",
    "load_rules",
]

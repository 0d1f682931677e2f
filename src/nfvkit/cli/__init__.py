"""The ``nfv`` command line: one module per noun, thin over the library."""

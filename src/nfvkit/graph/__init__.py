"""Element graphs: a declarative spec (YAML or compact text), validated as a whole, and a
run-to-completion runtime that pushes batches through it."""

"""Phase-by-phase (acyclic) signal control: the reference controller and what drives it."""

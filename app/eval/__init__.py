"""Evaluation on the shapes world: GenEval-format scoring, edit metrics and plan fidelity."""

"""The claim engine: turns declared claims into verdicts.

``claim`` (declaring a claim, the registry and user claim files), ``laws`` (expected laws and their verdicts),
``stats`` (intervals), ``sweep`` (a claim at a tier becomes tasks; evaluation), ``executors`` (where tasks run:
in process, local worker processes, a Ray cluster), ``store`` (SQLite results), ``report`` and ``cli``.
The other half of :mod:`harness` holds the numerics the claims measure with (models, kernels, Hessians, training,
backends); nothing here imports torch or jax.
"""
from .claim import Claim, Control, Setting, Tier, get_claim, registry
from .laws import AtScale, EveryScale, Increasing, Law, PowerLaw, Proportion
from .store import Store
from .sweep import evaluate, run_claim, tasks_for

__all__ = ["Claim", "Control", "Setting", "Tier", "get_claim", "registry", "Law", "PowerLaw", "AtScale",
           "EveryScale", "Increasing", "Proportion", "Store", "run_claim", "evaluate", "tasks_for"]

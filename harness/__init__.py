"""Deep-learning theory harness, in two halves: the numerics that measure (backend-neutral models,
parametrisations, kernels, Hessians and training on torch and JAX; ``harness/backends/`` holds one module per
framework) and the engine that turns claims into verdicts (``harness.engine``: claims, laws, statistics, sweeps,
executors, store, report, CLI).

Importing :mod:`harness` loads neither torch nor jax; :func:`get_backend` imports the one asked for.
"""
from .analytic import Kernels, mlp_kernels, nngp_kernel, ntk_kernel
from .backends import Backend, TrainResult, available_backends, get_backend
from .errors import HarnessError
from .losses import cross_entropy, mse
from .models import MLP, FunctionModel, Model, OutputScaled, output_scaled
from .adapters import from_equinox, from_flax, from_jax, from_nnx, from_torch
from .montecarlo import MonteCarloKernels, monte_carlo_kernels
from .optim import Optimizer, adam, sgd
from .parametrisation import PARAMETRISATIONS, get_parametrisation
from .engine import (AtScale, Claim, Control, EveryScale, Increasing, Law, PowerLaw, Proportion, Tier, get_claim,
                     run_claim)

__all__ = [
    "get_backend", "available_backends", "Backend", "TrainResult", "HarnessError",
    "MLP", "FunctionModel", "Model", "OutputScaled", "output_scaled",
    "from_torch", "from_flax", "from_nnx", "from_equinox", "from_jax",
    "mlp_kernels", "nngp_kernel", "ntk_kernel", "Kernels",
    "monte_carlo_kernels", "MonteCarloKernels",
    "sgd", "adam", "Optimizer", "mse", "cross_entropy",
    "PARAMETRISATIONS", "get_parametrisation",
    "Claim", "Control", "Tier", "Law", "PowerLaw", "AtScale", "EveryScale", "Increasing", "Proportion",
    "get_claim", "run_claim",
]

"""Deep-learning theory harness: backend-neutral models, kernels, Hessians and training on torch and JAX.

Importing :mod:`harness` loads neither torch nor jax; :func:`get_backend` imports the one asked for.
"""
from .analytic import Kernels, mlp_kernels, nngp_kernel, ntk_kernel
from .backends import Backend, TrainResult, available_backends, get_backend
from .errors import HarnessError
from .losses import cross_entropy, mse
from .models import MLP, FunctionModel, Model, OutputScaled, output_scaled
from .optim import Optimizer, adam, sgd
from .parametrisation import PARAMETRISATIONS, get_parametrisation

__all__ = [
    "get_backend", "available_backends", "Backend", "TrainResult", "HarnessError",
    "MLP", "FunctionModel", "Model", "OutputScaled", "output_scaled",
    "mlp_kernels", "nngp_kernel", "ntk_kernel", "Kernels",
    "sgd", "adam", "Optimizer", "mse", "cross_entropy",
    "PARAMETRISATIONS", "get_parametrisation",
]

"""A claim about a flax network of the user's own (tests/test_user_claims.py runs it from a copy outside the
package): the README's torch example, on a flax linen module through harness.adapters.from_flax and
harness.widths.parametrise, jax only. Piloted on base seeds 0..3 (jax): held, control rejected each time."""
import functools

import jax
import numpy as np
from flax import linen as nn

from harness import Claim, Control, PowerLaw, Tier, adam
from harness.adapters import from_flax
from harness.widths import parametrise


class Net(nn.Module):                       # the user's own flax network
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width)(x))
        x = nn.relu(nn.Dense(self.width)(x))
        return nn.Dense(1)(x)


def adapted(width):
    net, x = Net(width), np.zeros((1, 8))
    return from_flax(net, net.init(jax.random.PRNGKey(0), x),
                     reinit=lambda seed: net.init(jax.random.PRNGKey(seed), x), output_dim=1)


@functools.lru_cache(maxsize=None)       # one model per width: JAX compiles its training step once, not per seed
def model_at(width, parametrisation):
    return parametrise(adapted(width), parametrisation, base=adapted(16), delta=adapted(32))


def output_change(setting, backend):
    """How far a few Adam steps move the network's outputs, at one width, in the premise's parametrisation."""
    p = setting.premise
    model = model_at(int(setting.scale), p["parametrisation"])
    rng = np.random.default_rng(p["data_seed"])
    x, y = rng.standard_normal((32, 8)), rng.standard_normal((32, 1))
    params = backend.init(model, setting.seed)
    run = backend.train(model, params, x, y, adam(p["lr"]), p["steps"])
    f0, f1 = backend.apply(model, params, x), backend.apply(model, run.params, x)
    return {"output_change": float(np.mean(np.abs(f1 - f0)))}


MY_FLAX_NET = Claim(
    id="my-flax-net-mup-coord-check",
    title="under muP my flax network's output moves by a width-independent amount after a few Adam steps",
    paper="Yang et al. 2021 (TP-V), the coordinate check, on a flax network of my own",
    statement="After a few Adam steps the mean change of the outputs of my flax network does not grow with its "
              "width under muP; under the standard parametrisation it grows like the width.",
    premise=dict(parametrisation="mup", lr=1e-2, steps=3, data_seed=0),
    scale_name="width",
    measure=output_change,
    outputs=("output_change",),
    backends=("jax",),
    laws=(PowerLaw("width-free", "output_change", (-0.2, 0.2), what="exponent of the output change in width"),),
    controls=(Control("standard", {"parametrisation": "standard"}, "one learning rate for every layer: the output "
                      "change grows with the width"),),
    tiers={"ci": Tier(scales=(64, 128, 256, 512, 1024), seeds=4, max_seeds=32)},
)

"""The pilots of issue 22: the unregistered draft claims/_depth_transfer_pilot.py (its draft builds, stays out of the
registry, and its measure runs at one small point on each backend and returns what the draft's laws read), and the
command line of claims/_coord_check_transformer_pilot.py, the pilot of the registered coord-check-transformer. A
pilot's figures are in its module's description, not asserted here."""
import importlib

import numpy as np
import pytest

from harness.engine.claim import Setting
from harness.engine.claim import package_claims


@pytest.mark.parametrize("module, claim_id", [("claims._depth_transfer_pilot", "depth-lr-transfer")])
def test_a_pilots_draft_is_not_registered(module, claim_id):
    draft = [v for v in vars(importlib.import_module(module)).values() if getattr(v, "id", None) == claim_id]
    assert len(draft) == 1 and draft[0].tier("full") is not None
    assert claim_id not in package_claims()


def test_the_depth_pilots_measure_locates_an_optimum(backend64):
    """One (depth 2, seed 0) of the draft on the upper part of its grid (2^-5..2^0): an optimum bracketed inside
    it (the pilot's: 2^-1.47 at this seed)."""
    from claims._depth_transfer_pilot import DEPTH_LR_TRANSFER as c, depth_optimum
    premise = {**c.premise, "log2_lr": (-5, 0)}
    out = depth_optimum(Setting(c.id, "claim", "pilot", premise, 2.0, 0), backend64)
    assert set(c.outputs) <= set(out)
    assert -5 < out["log2_lr_opt"] < 0 and np.isfinite(out["best_loss"])


def test_the_transformer_pilot_prints_every_coordinate_and_its_exponent(capsys):
    """The pilot's command line at two small widths, one seed, on the claim's premise with one output (``--set``):
    a line of every coordinate's change per width and one of their exponents."""
    from claims._coord_check_transformer_pilot import main
    from claims.coord_check_transformer import COORDINATES
    main(["--widths", "64,128", "--seeds", "1", "--parametrisation", "mup", "--set", "outputs=1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("mup exponents")
    assert all(f"'{name}'" in line for name in COORDINATES for line in lines)


@pytest.mark.parametrize("item", ["lrr=0.003", "lr"])
def test_the_transformer_pilots_set_refuses_what_is_not_a_premise_setting(item, capsys):
    """``--set`` with a key the premise does not have (a typo would otherwise change nothing) or without ``=`` is
    a one-line usage error, exit 2, before anything is measured."""
    from claims._coord_check_transformer_pilot import main
    with pytest.raises(SystemExit) as e:
        main(["--set", item, "--widths", "64", "--seeds", "1"])
    assert e.value.code == 2 and "expected KEY=VALUE with KEY one of" in capsys.readouterr().err

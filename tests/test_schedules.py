from __future__ import annotations

import numpy as np
import pytest

from intermodal.training.schedules import PAPER_EPOCHS, betas, parse_schedule


def paper(spec, epochs):
    return betas(spec, max(epochs) + 1, horizon=PAPER_EPOCHS)[epochs]


def test_constant_schedules():
    np.testing.assert_array_equal(paper("constant-1", [0, 500, 79_999]), [1, 1, 1])
    np.testing.assert_allclose(paper("constant-0", [0, 1, 500, 999, 1000, 5000]), [1, 0.999, 0.5, 0.001, 0, 0])
    np.testing.assert_array_equal(betas("constant:beta=0.25", 3), [0.25] * 3)


def test_dynamic_plateau_cycles():
    e = np.arange(PAPER_EPOCHS)
    b0 = betas("dynamic-plateau-0", PAPER_EPOCHS, PAPER_EPOCHS)
    b1 = betas("dynamic-plateau-1", PAPER_EPOCHS, PAPER_EPOCHS)
    np.testing.assert_array_equal(b0[:70_000], b1[:70_000])
    assert (b0[70_000:] == 0).all() and (b1[70_000:] == 1).all()
    # first cycle: falls from 1 over the whole 80 epochs
    np.testing.assert_allclose(b0[:80], 1 - np.arange(80) / 80)
    # every cycle starts at 1, 80 epochs apart
    assert (b0[:70_000:80] == 1).all()
    # the last cycle before 70 000 falls within one epoch: 1 then zeros
    assert b0[69_920] == 1 and (b0[69_921:70_000] == 0).all()
    # the fall length shrinks linearly: cycle k=437 (half-way) is ~40.5 epochs long
    start = 437 * 80
    fall = 80 - 79 * 437 / 874
    np.testing.assert_allclose(b0[start + 10], 1 - 10 / fall)
    assert ((b0 >= 0) & (b0 <= 1)).all() and np.isfinite(b0[e]).all()


def test_scaling_to_a_shorter_run():
    # A 2 000-epoch run is 1/40 of the paper: constant-0 falls over 25 epochs, the plateau
    # starts at 1 750.
    b = betas("constant-0", 2000)
    np.testing.assert_allclose(b[[0, 5, 25, 100]], [1, 0.8, 0, 0])
    d = betas("dynamic-plateau-1", 2000)
    assert (d[1750:] == 1).all() and (d[:1750] < 1).any()
    np.testing.assert_allclose(betas("dynamic-plateau-0", 4000)[:4], [1, 0.75, 0.5, 0.25])


def test_linear_and_cyclical():
    np.testing.assert_allclose(betas("linear:warmup=1000", 2000, PAPER_EPOCHS)[[0, 500, 1000, 1999]], [0, 0.5, 1, 1])
    c = betas("cyclical:cycles=4:ratio=0.5", 400)
    np.testing.assert_allclose(c[[0, 25, 50, 99, 100, 125]], [0, 0.5, 1, 1, 0, 0.5])


def test_table_schedule(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("epoch,beta\n0,0\n10,1\n20,0.5\n")
    np.testing.assert_allclose(betas(f"table:{path}", 30)[[0, 5, 10, 15, 25]], [0, 0.5, 1, 0.75, 0.5])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("constant-2", "unknown schedule 'constant-2'"),
        ("cyclical:cycles=0", "cycles=0 is out of range"),
        ("linear:speed=3", "unknown parameter 'speed=3'"),
        ("constant", r"give beta=…"),
        ("table:/no/such.csv", "does not exist"),
    ],
)
def test_bad_schedules_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(spec)

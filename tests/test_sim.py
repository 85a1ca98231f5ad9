"""The keyboard-arm simulator: its rows obey the physics it documents."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from intermodal.data import catalog, sim, sim_world
from intermodal.data.description import builtin_description_path
from intermodal.data.reading import load_description
from intermodal.errors import ConfigError
from intermodal.model.architecture import PRESETS, architecture_preset


@pytest.fixture(scope="module")
def default():
    return sim.simulate()


@pytest.fixture(scope="module")
def noiseless():
    return sim.simulate(vision_noise=0.0)


def columns(ds, selector):
    return ds.description.columns_of(selector)


def both_parts(ds):
    return [ds.train, ds.test]


# ----------------------------------------------------------------------------- layout
def test_layout_matches_the_icub_data(default):
    icub = load_description(builtin_description_path("icub-zambelli2020"))
    desc = default.description
    assert desc.name == "sim-keyboard-arm"
    assert desc.column_names() == icub.column_names()
    assert desc.muting_patterns == icub.muting_patterns
    assert default.train.shape == (1845, 28) and default.test.shape == (1487, 28)
    assert default.train.dtype == np.float64
    assert default.origin == "sim(seed=0)"
    for rows in both_parts(default):
        assert np.isfinite(rows).all()
        assert rows.min() >= -1.0 and rows.max() <= 1.0


def test_architecture_one_is_the_icub_preset(default):
    icub = load_description(builtin_description_path("icub-zambelli2020"))
    for preset in PRESETS:
        assert architecture_preset(preset, default.description).to_dict() == architecture_preset(preset, icub).to_dict()


@pytest.mark.parametrize(
    "options",
    [
        dict(distractors=("noise", "copy-vision", "noise:2")),
        dict(drop=("touch",)),
        dict(drop=("joints", "sound"), distractors=("noise",)),
    ],
)
def test_every_architecture_preset_builds(options):
    desc = sim.description(sim.SimConfig(**options))
    for preset in PRESETS:
        arch = architecture_preset(preset, desc)
        assert sorted(arch.slices) == sorted(desc.modality_names)
        assert arch.shared_decoder[-1] == sum(arch.slices.values())


# ----------------------------------------------------------------------------- physics
def test_vision_is_a_fixed_function_of_the_joints(noiseless):
    for rows in both_parts(noiseless):
        for step in ("t", "t-1"):
            joints = rows[:, columns(noiseless, f"joints@{step}")]
            vision = rows[:, columns(noiseless, f"vision@{step}")]
            np.testing.assert_allclose(vision, sim_world.vision_from_joints(joints), rtol=0, atol=1e-12)
    # The fingertip stays in view, so noise-free vision is never clipped at the border.
    assert np.abs(noiseless.test[:, columns(noiseless, "vision")]).max() < 1.0


def test_default_vision_noise_is_one_pixel(default, noiseless):
    difference = default.test[:, columns(default, "vision@t")] - noiseless.test[:, columns(default, "vision@t")]
    pixels = difference * np.tile(np.asarray(sim_world.IMAGE_SIZE_PX) / 2, 2)
    assert pixels.std() == pytest.approx(1.0, rel=0.05)
    # Everything but vision is untouched by pixel noise.
    others = ~default.description.mask("vision")
    assert np.array_equal(default.test[:, others], noiseless.test[:, others])


def test_joint_change_follows_the_previous_motor_command(default):
    for rows in both_parts(default):
        change = rows[:, columns(default, "joints@t")] - rows[:, columns(default, "joints@t-1")]
        motor_before = rows[:, columns(default, "motor@t-1")]
        np.testing.assert_allclose(change, sim_world.MOTOR_GAIN * motor_before, rtol=0, atol=1e-12)
        # The babbling stays inside the limits, so the relation is never broken by clipping.
        assert np.abs(rows[:, columns(default, "joints")]).max() < 1.0
    np.testing.assert_allclose(sim_world.MOTOR_GAIN, 0.2)


def test_motor_is_smooth_babbling_with_pauses(default):
    motor = default.test[:, columns(default, "motor@t")]
    assert np.abs(motor).max() <= 1.0 and np.abs(motor).max() > 0.9
    paused = (motor == 0).all(axis=1).mean()
    assert 0.02 < paused < 0.3
    # A move's command rises and falls gradually: consecutive commands differ by less
    # than a full swing except where a move ends and the next begins.
    assert np.median(np.abs(np.diff(motor, axis=0))) < 0.2


def test_touch_and_sound_take_two_values_and_sound_needs_touch(default):
    for rows in both_parts(default):
        for step in ("t", "t-1"):
            touch = rows[:, columns(default, f"touch@{step}")[0]]
            sound = rows[:, columns(default, f"sound@{step}")[0]]
            assert set(np.unique(touch)) <= {-1.0, 1.0}
            silent = sound == -1.0
            low, high = sim_world.SOUND_ON_RANGE
            assert ((sound[~silent] >= low) & (sound[~silent] <= high)).all()
            assert (touch[~silent] == 1.0).all(), "sound without touch"
    touch_on = (default.train[:, columns(default, "touch@t")[0]] > 0).mean()
    sound_on = (default.train[:, columns(default, "sound@t")[0]] > 0).mean()
    assert 0.1 < touch_on < 0.3 and 0.02 < sound_on < touch_on


def test_touch_and_sound_follow_the_fingertip(default):
    for rows in both_parts(default):
        joints = rows[:, columns(default, "joints@t")]
        touch, sound = sim_world.contact_from_joints(joints)
        assert np.array_equal(touch, rows[:, columns(default, "touch@t")[0]])
        # Angles pass through the normalisation and back here: equal up to rounding.
        np.testing.assert_allclose(sound, rows[:, columns(default, "sound@t")[0]], rtol=0, atol=1e-9)
        # The fingertip only goes below the key tops over the keyboard, and never through
        # a key's floor (beyond rounding of the planned press depth).
        tip = sim_world.fingertip_position(sim_world.joints_to_angles(joints))
        below = tip[:, 2] < sim_world.KEY_TOP_Z_M
        assert (touch[below] == sim_world.TOUCH_ON).all()
        assert tip[:, 2].min() > sim_world.KEY_TOP_Z_M - sim_world.KEY_TRAVEL_M - 1e-3


def test_kinematics_round_trip():
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(-0.15, 0.15, 50), rng.uniform(0.24, 0.34, 50), rng.uniform(-0.29, -0.2, 50)], axis=1)
    pitch = rng.uniform(*sim.FINGER_PITCH_RANGE_RAD, 50)
    angles = sim_world.inverse_kinematics(points, pitch)
    np.testing.assert_allclose(sim_world.fingertip_position(angles), points, atol=1e-12)
    np.testing.assert_allclose(sim_world.joints_to_angles(sim_world.angles_to_joints(angles)), angles, atol=1e-12)


def test_t_minus_1_columns_repeat_the_previous_row(default):
    noisy = sim.simulate(
        n_train=100, n_test=300, noise={"joints": 0.05, "touch": 0.1}, distractors=("noise", "copy-motor")
    )
    for ds in (default, noisy):
        rows = ds.test
        for m in ds.description.modality_names:
            now, before = rows[:, columns(ds, f"{m}@t")], rows[:, columns(ds, f"{m}@t-1")]
            assert np.array_equal(before[1:], now[:-1]), m


# ----------------------------------------------------------------------------- randomness
def test_same_seed_same_bytes_other_seed_other_data():
    a, b, c = (sim.simulate(seed=seed, n_train=300, n_test=200) for seed in (3, 3, 4))
    assert a.train.tobytes() == b.train.tobytes() and a.test.tobytes() == b.test.tobytes()
    assert not np.array_equal(a.train, c.train) and not np.array_equal(a.test, c.test)


def test_adding_a_distractor_leaves_the_other_columns_unchanged(default):
    extended = sim.simulate(distractors=("noise",))
    kept = ~extended.description.mask("noise")
    assert np.array_equal(extended.test[:, kept], default.test)
    assert np.array_equal(extended.train[:, kept], default.train)


def fingerprint(rows):
    """One number that moves with every value and with the row order."""
    weights = np.arange(1, rows.size + 1, dtype=np.float64).reshape(rows.shape) / rows.size
    return float((rows * weights).sum())


@pytest.mark.parametrize(
    "options, train, test",
    [
        (dict(), -3350.5282841459975, -2775.987809858023),
        (
            dict(
                seed=3,
                n_train=500,
                n_test=300,
                distractors=("noise", "copy-vision"),
                drop=("sound",),
                noise={"joints": 0.05},
            ),
            -525.8432600685643,
            -400.4456901304286,
        ),
    ],
)
def test_data_is_pinned(options, train, test):
    """The numbers the simulator made when pinned: a change to them is a change of data set
    (compare bit for bit with np.array_equal against saved arrays before updating these)."""
    ds = sim.simulate(**options)
    assert fingerprint(ds.train) == pytest.approx(train, rel=1e-10, abs=0)
    assert fingerprint(ds.test) == pytest.approx(test, rel=1e-10, abs=0)


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_other_seeds_plan_valid_trajectories(seed):
    ds = sim.simulate(seed=seed, n_train=400, n_test=400, vision_noise=0)
    joints = ds.test[:, columns(ds, "joints@t")]
    np.testing.assert_allclose(ds.test[:, columns(ds, "vision@t")], sim_world.vision_from_joints(joints), atol=1e-12)
    assert np.abs(joints).max() < 1


# ----------------------------------------------------------------------------- options
def test_noise_distractor_is_independent_of_everything():
    ds = sim.simulate(distractors=("noise",))
    noise = ds.description.mask("noise")
    assert noise.sum() == 2 * sim.NOISE_DISTRACTOR_SIZE
    for rows in both_parts(ds):
        values = rows[:, noise]
        assert values.min() >= -1 and values.max() <= 1
        assert abs(values.mean()) < 0.05 and values.std() == pytest.approx(1 / np.sqrt(3), rel=0.05)
        corr = np.corrcoef(rows.T)[np.ix_(noise, ~noise)]
        assert np.nanmax(np.abs(corr)) < 0.12
        # Within a row, t and t-1 of the noise are independent too.
        within = np.corrcoef(values.T)
        assert np.abs(within - np.eye(len(within))).max() < 0.12


def test_copy_distractor_equals_its_source_noise_included():
    ds = sim.simulate(n_train=200, n_test=200, distractors=("copy-vision",), noise={"vision": 0.05})
    for rows in both_parts(ds):
        assert np.array_equal(rows[:, columns(ds, "copy-vision")], rows[:, columns(ds, "vision")])
    own_noise = sim.simulate(n_train=200, n_test=200, distractors=("copy-vision",), noise={"copy-vision": 0.1})
    difference = own_noise.test[:, columns(own_noise, "copy-vision")] - own_noise.test[:, columns(own_noise, "vision")]
    assert 0.05 < difference.std() < 0.15


def test_repeated_distractors_get_numbered_names():
    config = sim.SimConfig(distractors=("noise", "noise:2", "copy-touch", "copy-touch"))
    assert config.distractor_modalities() == [
        ("noise", 4, None),
        ("noise-2", 2, None),
        ("copy-touch", 1, "touch"),
        ("copy-touch-2", 1, "touch"),
    ]
    desc = sim.description(config)
    assert desc.modality_names == [
        "joints",
        "vision",
        "touch",
        "sound",
        "motor",
        "noise",
        "noise-2",
        "copy-touch",
        "copy-touch-2",
    ]


def test_distractors_are_muted_like_the_modalities_they_join():
    patterns = sim.description(sim.SimConfig(distractors=("noise",))).muting_patterns
    assert patterns["complete"] == ()
    assert "noise" in patterns["vision-only"] and "noise" in patterns["control"]
    assert "noise@t" in patterns["t-1-only"] and "noise" not in patterns["t-1-only"]


def test_teach_copies_gives_a_copy_alone_as_its_source_is():
    """vision-only gives vision and mutes its copy; with teach_copies, copy-vision-only is the
    same pattern with the two swapped, so that training teaches the models to read the copy
    too. A copy whose source has no "M-only" pattern gets none; without the option, or
    without copies, the four patterns stay."""
    options = dict(distractors=("noise", "copy-vision", "copy-joints"))
    assert list(sim.description(sim.SimConfig(**options)).muting_patterns) == [
        "complete",
        "vision-only",
        "t-1-only",
        "control",
    ]
    patterns = sim.description(sim.SimConfig(**options, teach_copies=True)).muting_patterns
    alone = patterns["vision-only"]
    assert "copy-vision" in alone and "vision" not in alone
    assert set(patterns["copy-vision-only"]) == set(alone) - {"copy-vision"} | {"vision"}
    assert "copy-joints-only" not in patterns
    assert list(sim.description(sim.SimConfig(teach_copies=True)).muting_patterns) == list(
        sim.description().muting_patterns
    )
    dropped = sim.description(
        sim.SimConfig(distractors=("copy-vision",), drop=("joints",), teach_copies=True)
    ).muting_patterns
    assert set(dropped["copy-vision-only"]) == set(dropped["vision-only"]) - {"copy-vision"} | {"vision"}


def test_xor_adds_two_random_bits_and_their_product():
    ds = sim.simulate(distractors=("xor",))
    assert ds.description.modality_names[-3:] == list(sim.SYNERGY_NAMES) == ["bit-a", "bit-b", "bit-ab"]
    assert ds.train.shape == (1845, 34) and ds.test.shape == (1487, 34)
    for rows in both_parts(ds):
        for step in ("t", "t-1"):
            a, b, ab = (rows[:, columns(ds, f"{m}@{step}")][:, 0] for m in sim.SYNERGY_NAMES)
            # Exactly -1 or 1 (never the muted value), the product exact.
            assert set(np.unique(a)) == set(np.unique(b)) == set(np.unique(ab)) == {-1.0, 1.0}
            assert ds.description.muted_value not in (-1.0, 1.0)
            assert np.array_equal(ab, a * b)
            # Either bit alone says nothing of the product: half the products are 1 whatever it is.
            for bit in (a, b):
                for value in (-1.0, 1.0):
                    assert abs((ab[bit == value] == 1).mean() - 0.5) < 0.06
        bits = ds.description.mask("bit-a") | ds.description.mask("bit-b")
        assert abs(rows[:, bits].mean()) < 0.05
        # The bits are independent of everything else, of each other and of their own other step.
        corr = np.corrcoef(rows.T)[np.ix_(bits, ~bits)]
        assert np.nanmax(np.abs(corr)) < 0.12
        within = np.corrcoef(rows[:, bits].T)
        assert np.abs(within - np.eye(len(within))).max() < 0.12


def test_a_wider_xor_writes_each_bit_in_every_column():
    """xor:3 writes each row's bit three times per step (a wider decoder, the same
    information), and its first column is the bit xor draws."""
    one, wide = sim.simulate(distractors=("xor",)), sim.simulate(distractors=("xor:3",))
    for name in sim.SYNERGY_NAMES:
        for step in ("t", "t-1"):
            cols = wide.train[:, columns(wide, f"{name}@{step}")]
            assert cols.shape[1] == 3 and np.array_equal(cols, np.repeat(cols[:, :1], 3, axis=1))
            assert np.array_equal(cols[:, 0], one.train[:, columns(one, f"{name}@{step}")][:, 0])
    a, b, ab = (wide.train[:, columns(wide, f"{m}@t")] for m in sim.SYNERGY_NAMES)
    assert np.array_equal(ab, a * b)


def test_xor_leaves_every_other_column_bitwise_unchanged(default):
    extended = sim.simulate(distractors=("xor",))
    triple = np.any([extended.description.mask(m) for m in sim.SYNERGY_NAMES], axis=0)
    assert np.array_equal(extended.train[:, ~triple], default.train)
    assert np.array_equal(extended.test[:, ~triple], default.test)
    options = dict(n_train=300, n_test=200, distractors=("noise", "copy-vision"), noise={"vision": 0.05})
    before = sim.simulate(**options)
    after = sim.simulate(**{**options, "distractors": ("noise", "xor", "copy-vision")})
    kept = ~np.any([after.description.mask(m) for m in sim.SYNERGY_NAMES], axis=0)
    assert np.array_equal(after.train[:, kept], before.train) and np.array_equal(after.test[:, kept], before.test)


def test_repeated_xor_gets_numbered_names_and_its_own_bits():
    config = sim.SimConfig(distractors=("xor", "xor"))
    assert config.distractor_modalities() == [
        ("bit-a", 1, "random bit"),
        ("bit-b", 1, "random bit"),
        ("bit-ab", 1, "bit-a*bit-b"),
        ("bit-a-2", 1, "random bit"),
        ("bit-b-2", 1, "random bit"),
        ("bit-ab-2", 1, "bit-a-2*bit-b-2"),
    ]
    ds = sim.simulate(config, n_train=200, n_test=200)
    rows = ds.test
    assert np.array_equal(
        rows[:, columns(ds, "bit-ab-2")], rows[:, columns(ds, "bit-a-2")] * rows[:, columns(ds, "bit-b-2")]
    )
    assert not np.array_equal(rows[:, columns(ds, "bit-a")], rows[:, columns(ds, "bit-a-2")])


def test_xor_noise_falls_on_the_named_modality_and_not_on_the_product():
    ds = sim.simulate(n_train=200, n_test=400, distractors=("xor",), noise={"bit-a": 0.1})
    a, b, ab = (ds.test[:, columns(ds, f"{m}@t")][:, 0] for m in sim.SYNERGY_NAMES)
    assert set(np.unique(ab)) == {-1.0, 1.0} and set(np.unique(b)) == {-1.0, 1.0}
    # The product is of the bits as drawn; bit-a's noise is its own (then clipped into [-1, 1]).
    assert np.array_equal(ab, np.sign(a) * b) and 0.02 < np.abs(a - np.sign(a)).mean() < 0.1


def test_control_asks_for_the_product_from_the_bits():
    """The triple is muted like any distractor, except in control, which gives the bits and
    mutes only their product: the one pattern that teaches the product from both bits."""
    patterns = sim.description(sim.SimConfig(distractors=("noise", "xor"))).muting_patterns
    assert patterns["complete"] == ()
    assert {"bit-a", "bit-b", "bit-ab"} <= set(patterns["vision-only"])
    assert {"bit-a@t", "bit-b@t", "bit-ab@t"} <= set(patterns["t-1-only"])
    assert "bit-ab" in patterns["control"] and "noise" in patterns["control"]
    assert not {"bit-a", "bit-b", "bit-a@t", "bit-b@t"} & set(patterns["control"])
    assert sim.SYNERGY_PATTERN == "control"


def test_drop_removes_the_modality_everywhere(default):
    ds = sim.simulate(drop=("sound",))
    desc = ds.description
    assert "sound" not in desc.modality_names
    assert ds.train.shape == (1845, 26)
    assert not any(c.startswith("sound") for c in desc.column_names())
    assert all(not s.startswith("sound") for sel in desc.muting_patterns.values() for s in sel)
    assert all(
        "sound" not in part
        for entry in desc.architectures.values()
        for part in entry.values()
        if isinstance(part, dict)
    )
    kept = ~default.description.mask("sound")
    assert np.array_equal(ds.test, default.test[:, kept])


def test_noise_option_adds_gaussian_noise_in_normalised_units(default):
    ds = sim.simulate(noise={"joints": 0.02})
    difference = ds.test[:, columns(ds, "joints")] - default.test[:, columns(ds, "joints")]
    assert difference.std() == pytest.approx(0.02, rel=0.05)
    others = ~ds.description.mask("joints")
    assert np.array_equal(ds.test[:, others], default.test[:, others])


def test_command_line_strings_become_typed_options():
    typed = sim.SimConfig.from_strings(
        {
            "seed": "3",
            "n-train": "10",
            "shuffle_train": "false",
            "noise": "vision=0.1, touch=0",
            "distractors": "noise,copy-joints",
            "drop": "sound",
        }
    )
    config = sim.SimConfig.from_mapping(typed, "command line")
    assert config.seed == 3 and config.n_train == 10 and config.shuffle_train is False
    assert config.noise == {"touch": 0.0, "vision": 0.1}
    assert config.distractors == ("noise", "copy-joints") and config.drop == ("sound",)
    as_json = sim.SimConfig.from_strings({"noise": '{"vision": 0.1}', "distractors": '["noise"]'})
    assert sim.SimConfig.from_mapping(as_json) == sim.SimConfig(noise={"vision": 0.1}, distractors=("noise",))
    with pytest.raises(ConfigError, match="noise"):
        sim.SimConfig.from_strings({"noise": "vision"})


def test_strings_are_not_values_outside_the_command_line():
    with pytest.raises(ConfigError, match="seed"):
        sim.SimConfig(seed="3")
    with pytest.raises(ConfigError, match="shuffle_train"):
        sim.SimConfig(shuffle_train="false")


def test_lists_may_be_lists_or_tuples_and_numpy_scalars_count():
    config = sim.SimConfig(distractors=["noise"], drop=["sound"], seed=np.int64(3), vision_noise=np.float32(0.5))
    assert config == sim.SimConfig(distractors=("noise",), drop=("sound",), seed=3, vision_noise=0.5)
    assert type(config.seed) is int and isinstance(config.distractors, tuple)


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(n_trian=5), "n_trian"),
        (dict(n_train=-1), "n_train"),
        (dict(n_train=2.7), "n_train"),
        (dict(n_train=True), "n_train"),
        (dict(n_train="10"), "n_train"),
        (dict(n_test=0), "n_test"),
        (dict(seed="abc"), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(vision_noise=-0.1), "vision_noise"),
        (dict(vision_noise=float("nan")), "vision_noise"),
        (dict(vision_noise=float("inf")), "vision_noise"),
        (dict(press_probability=1.5), "press_probability"),
        (dict(pause_probability=float("nan")), "pause_probability"),
        (dict(shuffle_train="maybe"), "shuffle_train"),
        (dict(shuffle_train=1), "shuffle_train"),
        (dict(drop=("smell",)), "drop"),
        (dict(drop="sound"), "drop"),
        (dict(drop=None), "drop"),
        (dict(drop=("sound", "sound")), "drop"),
        (dict(drop=("joints", "vision", "touch", "sound", "motor")), "drop"),
        (dict(noise={"smell": 0.1}), "noise"),
        (dict(noise={"vision": -1}), "noise"),
        (dict(noise={"vision": float("nan")}), "noise"),
        (dict(noise={"vision": "0.1"}), "noise"),
        (dict(noise="vision=0.1"), "noise"),
        (dict(noise={"sound": 0.1}, drop=("sound",)), "noise"),
        (dict(distractors="noise"), "distractors"),
        (dict(distractors={"noise", "copy-vision"}), "distractors"),
        (dict(distractors=("static",)), "distractors"),
        (dict(distractors=("copy-smell",)), "distractors"),
        (dict(distractors=("copy-touch",), drop=("touch",)), "distractors"),
        (dict(distractors=("noise:0",)), "distractors"),
        (dict(distractors=("xor:0",)), "distractors"),
    ],
)
def test_bad_options_raise_option_error_naming_the_option(options, name):
    for make in (
        lambda: sim.simulate(**options),
        lambda: sim.SimConfig(**options),
        lambda: sim.simulate(sim.SimConfig(), **options),
        lambda: sim.SimConfig.from_mapping(options, "sim"),
    ):
        with pytest.raises(ConfigError, match=name):
            make()


def test_a_string_is_not_split_into_a_list():
    with pytest.raises(ConfigError) as error:
        sim.simulate(distractors="noise")
    assert "distractors" in str(error.value) and "string 'noise'" in str(error.value)


def test_unknown_option_lists_the_allowed_ones():
    for make in (
        lambda: sim.simulate(sim.SimConfig(), colour="red"),
        lambda: sim.simulate(colour="red"),
        lambda: sim.SimConfig(colour="red"),
    ):
        with pytest.raises(ConfigError) as error:
            make()
        assert "colour" in str(error.value) and "n_train" in str(error.value) and "distractors" in str(error.value)


def test_config_is_immutable_and_hashable():
    config = sim.SimConfig(noise={"vision": 0.1}, distractors=("noise",))
    with pytest.raises(ValueError):
        config.n_train = 5
    with pytest.raises(TypeError):
        config.noise["vision"] = 0.2
    assert config.noise == {"vision": 0.1}
    assert hash(config) == hash(sim.SimConfig(noise={"vision": 0.1}, distractors=["noise"]))
    assert len({sim.SimConfig(), sim.SimConfig(), config}) == 2
    assert pickle.loads(pickle.dumps(config)) == config
    assert sim.SimConfig.from_mapping(config.to_dict()) == config


def test_changed_lists_the_options_off_their_defaults():
    config = sim.SimConfig(seed=4, n_test=30, noise={"vision": 0.1, "joints": 0.05}, drop=["sound"])
    assert config.changed() == {"n_test": 30, "noise": {"joints": 0.05, "vision": 0.1}, "drop": ("sound",)}
    assert list(config.noise) == ["joints", "vision"]
    assert sim.SimConfig(seed=9).changed() == {}


def test_the_world_is_apart_from_the_options():
    """sim_world imports nothing from the package; sim imports only the data layer's modules
    and the root's errors, options and streams."""

    def package_imports(module):
        tree = ast.parse(Path(module.__file__).read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0} | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith("intermodal")
        }

    assert package_imports(sim_world) == set()
    assert package_imports(sim) == {
        "dataset",
        "description",
        "reading",
        "sim_world",
        "sim_compare",
        "errors",
        "options",
        "streams",
    }


def test_config_and_overrides_combine():
    ds = sim.simulate(sim.SimConfig(n_train=20, seed=7), n_test=30)
    assert ds.train.shape[0] == 20 and ds.test.shape[0] == 30
    assert ds.origin == "sim(seed=7, n_train=20, n_test=30)"


def test_tiny_sizes_and_unshuffled_training_rows():
    ds = sim.simulate(n_train=1, n_test=1)
    assert ds.train.shape == (1, 28) and ds.test.shape == (1, 28)
    ordered = sim.simulate(n_train=100, n_test=10, shuffle_train=False)
    rows = ordered.train
    assert np.array_equal(rows[1:, columns(ordered, "joints@t-1")], rows[:-1, columns(ordered, "joints@t")])


# ----------------------------------------------------------------------------- files
def test_write_and_load_back_identical_arrays(tmp_path):
    ds = sim.simulate(n_train=300, n_test=200, distractors=("noise",), noise={"motor": 0.01})
    path = catalog.write_dataset(ds, tmp_path / "sim")
    back = catalog.load_dataset(str(path))
    assert np.array_equal(back.train, ds.train) and np.array_equal(back.test, ds.test)
    assert back.description.column_names() == ds.description.column_names()
    assert back.description.muting_patterns == ds.description.muting_patterns
    assert back.description.architectures == ds.description.architectures


def test_load_dataset_sim_passes_options():
    ds = catalog.load_dataset("sim", sim={"n_train": 30, "n_test": 40, "seed": 2})
    assert ds.train.shape == (30, 28) and ds.test.shape == (40, 28)
    assert ds.origin == "sim(seed=2, n_train=30, n_test=40)"


# ----------------------------------------------------------------------------- comparison
def test_compare_with_lists_every_column_and_the_on_frequencies(default):
    table = sim.compare_with(default, sim.simulate(drop=("sound",), distractors=("noise",)), labels=("a", "b"))
    assert list(table.index[:28]) == default.description.column_names()
    assert "noise_t_0" in table.index and table.loc["sound_t_0", "b mean"] != table.loc["sound_t_0", "b mean"]  # NaN
    every_row = np.concatenate([default.train, default.test])
    touch_now = columns(default, "touch@t")[0]
    assert table.loc["touch on-frequency", "a mean"] == pytest.approx((every_row[:, touch_now] > 0).mean())
    assert "sound on-frequency" in table.index
    assert list(table.columns) == [f"{label} {stat}" for label in "ab" for stat in ("min", "max", "mean", "std")]


def test_statistics_are_roughly_icub_like(default, icub):
    table = sim.compare_with(default, icub, labels=("sim", "icub"))
    for modality in ("touch", "sound"):
        sim_on, icub_on = table.loc[f"{modality} on-frequency", ["sim mean", "icub mean"]]
        assert abs(sim_on - icub_on) < 0.1
    stds = table.iloc[:28][["sim std", "icub std"]]
    assert ((stds["sim std"] > 0.15) & (stds["sim std"] < 0.8)).all()

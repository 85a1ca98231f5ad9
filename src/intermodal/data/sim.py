"""A deterministic simulator of a robot arm playing a keyboard: the default data set.

It writes rows in the layout of the iCub piano data (Zambelli, Cully & Demiris 2020): five
modalities, each at steps ``t`` and ``t-1``, normalised to [-1, 1]. Because every signal is
computed from a known model, the simulator is where the information measures can be checked
against a ground truth (a modality of pure noise must come out uninformative, a copy of a
modality must be redundant with it, ...).

The physical world (arm, keyboard, cameras; kinematics, projection, contact) lives in
:mod:`intermodal.sim_world`; ``docs/simulator.md`` explains it at length. This module makes
a data set of it: the options (:class:`SimConfig`, a pydantic model on
:class:`intermodal.options.Options`), the motor babbling (:func:`plan_commands`, which stays
inside the joint limits, so nothing is ever clipped), and the signals of a trajectory with
their noise, distractors and dropped modalities turned into rows and a description.

Entry points: :class:`SimConfig`, :func:`simulate`, :func:`description`, and
:func:`compare_with` (per-column statistics of two data sets side by side).
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from ..errors import ConfigError, errors_as
from ..options import Options
from ..streams import MAX_SEED, Purpose, numpy_generator
from .dataset import Dataset
from .description import MAX_COLUMNS, DatasetDescription, Modality, builtin_description_path
from .reading import load_description
from .sim_compare import compare_with
from .sim_world import (
    IMAGE_SIZE_PX,
    JOINT_LIMITS_RAD,
    KEY_COUNT,
    KEY_TOP_Z_M,
    KEY_TRAVEL_M,
    KEY_WIDTH_M,
    KEYBOARD_FAR_Y_M,
    KEYBOARD_NEAR_Y_M,
    MAX_JOINT_SPEED_RAD_S,
    TIME_STEP_S,
    angles_to_joints,
    contact_from_angles,
    fingertip_position,
    inverse_kinematics,
    keyboard_x_range,
    pixels_to_vision,
    project_to_cameras,
)

__all__ = [
    "SimConfig",
    "simulate",
    "compare_with",
    "description",
    "plan_commands",
    "BASE_MODALITIES",
    "NOISE_DISTRACTOR_SIZE",
    "SYNERGY_NAMES",
    "DESCRIPTION_NAME",
]

# =========================================================================== constants
# --- motor babbling (plan_commands). Lengths in metres, angles in radians.
HOVER_HEIGHT_RANGE_M = (0.015, 0.05)  # fingertip height above the key before and after a press
PRESS_DEPTH_RANGE_M = (0.001, KEY_TRAVEL_M)  # how far a press pushes the key down
FINGER_PITCH_RANGE_RAD = (-1.35, -0.75)  # absolute angle of the hand below the horizontal when playing
KEY_MARGIN_M = 0.012  # a press lands this far inside the key's outline (never between keys)
FREE_CLEARANCE_M = 0.02  # a free-babbling pose keeps the fingertip this far above the key tops
PATH_CLEARANCE_M = 0.004  # every step of a move that is not a press stays this far above them
VIEW_MARGIN_PX = 4.0  # every step of a move that is not a press keeps the fingertip this far inside both images
JOINT_MARGIN = 0.03  # targets stay this fraction of a joint's range inside its limits
MIN_MOVE_STEPS = 3  # shortest move (steps)
EXTRA_MOVE_STEPS = 2  # a move lasts up to this many steps more than its speed limit needs
PRESS_MIN_STEPS = 3  # a key goes down (and comes back up) over at least this many steps
HOLD_STEPS = (0, 4)  # a pressed key is held for this many steps (inclusive range)
PAUSE_STEPS = (1, 4)  # a pause lasts this many steps (inclusive range)
MAX_TRIES = 200  # random targets tried before the planner gives up (never reached in practice)

# --- modalities
BASE_MODALITIES = (("joints", 4), ("vision", 4), ("touch", 1), ("sound", 1), ("motor", 4))
NOISE_DISTRACTOR_SIZE = 4  # size of a "noise" distractor unless given as "noise:SIZE"
# The "xor" distractor's modalities: two random bits (-1 or 1, one column each) and their
# product, which either bit alone says nothing of and both give exactly (a synergy).
SYNERGY_NAMES = ("bit-a", "bit-b", "bit-ab")
RANDOM_BIT = "random bit"  # the source distractor_modalities gives a bit of the triple
# The one muting pattern that gives the bits and mutes their product (every other pattern
# mutes the triple as any distractor): the iCub pattern that asks for the arm's command
# from what it sees asks for the product from the bits too.
SYNERGY_PATTERN = "control"
# With the option teach_copies, a copy of modality M is read alone as M is: where the
# patterns have "M-only" (M given, everything else muted), a copy gets "COPY-only" (the copy
# given, M and everything else muted). Without it no pattern gives the copy without its
# source, a model never learns to read it, and the lattice cannot show the two as redundant;
# with it, the models read both, and muting the copy from the whole input (a vertex no
# pattern teaches) is no longer free in every model (docs/simulator.md, "Teaching the copy").
ALONE_SUFFIX = "-only"
DESCRIPTION_NAME = "sim-keyboard-arm"
ICUB_DESCRIPTION = "icub-zambelli2020"  # muting patterns and architecture table come from it


# =========================================================================== options
def _python_scalar(value):
    """A numpy scalar (``np.int64(3)``, ``np.bool_(True)``) as the Python value it holds;
    anything else unchanged (and then checked strictly)."""
    return value.item() if isinstance(value, np.generic) else value


def _list_of_names(value):
    if isinstance(value, str):
        raise ValueError(f"expected a list of names such as ['noise', 'copy-vision'], got the string {value!r}")
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


class _ReadOnlyDict(dict):
    """A dict that refuses changes (and so can be hashed): ``SimConfig.noise``."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("SimConfig is immutable; make a new one (simulate(config, noise=...))")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __hash__(self):  # type: ignore[override]  # dict sets __hash__ = None; this one cannot change
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (_ReadOnlyDict, (dict(self),))


def _sorted_read_only(noise: dict) -> _ReadOnlyDict:
    return _ReadOnlyDict(sorted(noise.items()))


# The most rows the simulator makes per part (n_train, n_test): checked before anything is
# simulated (docs/reliability.md, "Limits"); a part of this many rows is about 0.2 GB.
MAX_SIM_ROWS = 1_000_000
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED), BeforeValidator(_python_scalar)]
RowCount = Annotated[int, Strict(), Field(ge=1, le=MAX_SIM_ROWS), BeforeValidator(_python_scalar)]
Flag = Annotated[bool, Strict(), BeforeValidator(_python_scalar)]
Std = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0), BeforeValidator(_python_scalar)]
Probability = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1), BeforeValidator(_python_scalar)]
Names = Annotated[tuple[Annotated[str, Strict()], ...], BeforeValidator(_list_of_names)]
NoiseStds = Annotated[dict[Annotated[str, Strict()], Std], AfterValidator(_sorted_read_only)]


def _distractor_spec(spec: str) -> list[tuple[str, int, str | None]]:
    """``(name before numbering, size, source)`` of each modality one distractor adds;
    ``source`` is None for noise, the arm modality a copy copies, :data:`RANDOM_BIT` for
    a bit of the synergy triple and ``"BIT*BIT"`` (names before numbering) for its product."""
    noise = re.fullmatch(r"noise(?::(\d+))?", spec)
    copy = re.fullmatch(r"copy-([A-Za-z]+)", spec)
    if noise:
        size = int(noise.group(1) or NOISE_DISTRACTOR_SIZE)
        if not 1 <= size <= MAX_COLUMNS:
            raise ValueError(f"{spec!r} asks for {size} columns; expected 1 to MAX_COLUMNS = {MAX_COLUMNS}")
        return [("noise", size, None)]
    if copy:
        sizes = dict(BASE_MODALITIES)
        source = copy.group(1)
        if source not in sizes:
            raise ValueError(f"{spec!r} copies {source!r}; it can copy one of {list(sizes)}")
        return [(f"copy-{source}", sizes[source], source)]
    xor = re.fullmatch(r"xor(?::(\d+))?", spec)
    if xor:
        size = int(xor.group(1) or 1)
        if not 1 <= size <= MAX_COLUMNS:
            raise ValueError(f"{spec!r} asks for {size} columns; expected 1 to MAX_COLUMNS = {MAX_COLUMNS}")
        a, b, product = SYNERGY_NAMES
        return [(a, size, RANDOM_BIT), (b, size, RANDOM_BIT), (product, size, f"{a}*{b}")]
    raise ValueError(f"{spec!r} is not 'noise', 'noise:SIZE', 'copy-MODALITY', 'xor' or 'xor:SIZE'")


@errors_as(ConfigError, known_keys=True)
class SimConfig(Options):
    """Every option of the simulator, with its default: an immutable pydantic model.

    Values must have their type: a whole number where a count is expected (not ``2.7``,
    not ``True``, not ``"3"``), ``true``/``false`` for a flag, a list of names where a list
    is expected (a string is not split), finite numbers in range. Build one with keywords
    (``SimConfig(n_train=500)``), from a mapping such as a config file's
    (``SimConfig.from_mapping(values, origin)``), or from command-line strings
    (``SimConfig.from_mapping(SimConfig.from_strings({"n_train": "500"}))``: numbers,
    ``true``/``false``, comma-separated lists, and ``name=std`` pairs or JSON for
    ``noise``). Every bad value raises :class:`intermodal.errors.ConfigError` (a
    ``ValueError``) naming the option.

    seed : int >= 0
        Seeds every random choice; the same configuration gives bitwise the same arrays.
    n_train, n_test : int >= 1
        Rows of the training part (one trajectory of ``n_train + 1`` steps, rows shuffled
        when ``shuffle_train``) and of the test part (one time-ordered trajectory).
        The study evaluates on the first 1024 test rows, so keep ``n_test >= 1024``.
    shuffle_train : bool
        Shuffle the training rows, as the iCub training file is.
    vision_noise : float >= 0
        Standard deviation, in pixels, of Gaussian noise added to each camera coordinate
        (images are 320 x 240 px, so 1 px is 1/160 normalised units in u, 1/120 in v).
    noise : {modality: std >= 0}
        Gaussian noise, in normalised units, added to a modality's values (after
        ``vision_noise``; before the copy of a ``copy-MOD`` distractor is taken); values
        are then clipped into [-1, 1]. Any modality of the data set, distractors included.
    distractors : list of str
        Extra modalities, in order: ``"noise"`` (values uniform in [-1, 1], independent
        of everything, ``NOISE_DISTRACTOR_SIZE`` wide), ``"noise:SIZE"``,
        ``"copy-MOD"`` (the values of modality MOD, its noise included), or ``"xor"``
        (three one-column modalities, :data:`SYNERGY_NAMES`: two random bits, -1 or 1, and
        their product, a synergy). A repeated name gets ``-2``, ``-3``, ... appended
        (``noise``, ``noise-2``; ``bit-a-2``, ``bit-b-2``, ``bit-ab-2``). Kept as a tuple.
    drop : list of str
        Modalities of the arm (joints, vision, touch, sound, motor; each at most once) left
        out of the data set; muting patterns lose their selectors. Kept as a tuple.
    press_probability : float in [0, 1]
        Chance that the next move plays a key (approach, press, hold, release) rather than
        a free move to a random pose above the keyboard.
    pause_probability : float in [0, 1]
        Chance of a pause (all commands 0) after a move.
    teach_copies : bool
        Add a muting pattern per ``copy-MOD`` distractor whose source has an ``MOD-only``
        pattern: ``copy-MOD-only``, the copy given alone as ``MOD-only`` gives its source, so
        that training teaches the models to read the copy (off: no pattern gives a copy
        without its source, and the models ignore it).
    """

    model_config = ConfigDict(frozen=True)

    seed: Seed = 0
    n_train: RowCount = 1845
    n_test: RowCount = 1487
    shuffle_train: Flag = True
    vision_noise: Std = 1.0
    noise: NoiseStds = Field(default_factory=_ReadOnlyDict)
    distractors: Names = ()
    drop: Names = ()
    press_probability: Probability = 0.6
    pause_probability: Probability = 0.15
    teach_copies: Flag = False

    @field_validator("distractors")
    @classmethod
    def _known_distractors(cls, distractors: tuple[str, ...]) -> tuple[str, ...]:
        for spec in distractors:
            _distractor_spec(spec)
        return distractors

    @field_validator("drop")
    @classmethod
    def _arm_modalities(cls, drop: tuple[str, ...]) -> tuple[str, ...]:
        base = [name for name, _ in BASE_MODALITIES]
        for name in drop:
            if name not in base:
                raise ValueError(f"{name!r} is not a modality of the arm; expected some of {base}")
        if len(set(drop)) != len(drop):
            raise ValueError(f"names repeat in {list(drop)}; expected each modality at most once")
        return drop

    @model_validator(mode="after")
    def _consistent(self):
        for spec in self.distractors:
            for _, _, source in _distractor_spec(spec):
                if source in self.drop:
                    raise ValueError(f"distractors: {spec!r} copies {source!r}, which drop removes")
        names = [name for name, _ in BASE_MODALITIES if name not in self.drop]
        names += [name for name, _, _ in self.distractor_modalities()]
        if not names:
            raise ValueError("drop: every modality is dropped and no distractor is added; nothing is left")
        for name in self.noise:
            if name not in names:
                raise ValueError(f"noise: {name!r} is not a modality of this data set; it has {names}")
        return self

    @classmethod
    def from_strings(cls, values: dict[str, Any], origin: str = "command line") -> dict:
        """Command-line strings by option name → typed values, as :meth:`Options.from_strings`;
        ``noise`` may also be written ``"vision=0.1,touch=0.05"``."""
        text = values.get("noise")
        if isinstance(text, str) and not text.strip().startswith("{"):
            values = {**values, "noise": _noise_pairs(text, f"{origin}: noise")}
        return super().from_strings(values, origin)

    def distractor_modalities(self) -> list[tuple[str, int, str | None]]:
        """``(name, size, source)`` of each distractor modality: ``source`` is None for
        noise, the copied modality for a copy, ``"random bit"`` for a bit of the synergy
        triple and ``"BIT*BIT"`` (their numbered names) for its product."""
        out, seen = [], set()
        for spec in self.distractors:
            numbered = {}
            for base_name, size, source in _distractor_spec(spec):
                name, k = base_name, 1
                while name in seen:
                    k += 1
                    name = f"{base_name}-{k}"
                seen.add(name)
                numbered[base_name] = name
                if source is not None and "*" in source:
                    source = "*".join(numbered[n] for n in source.split("*"))
                out.append((name, size, source))
        return out

    def changed(self) -> dict:
        """The options that differ from their defaults (besides ``seed``)."""
        default = SimConfig()
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name != "seed" and getattr(self, name) != getattr(default, name)
        }


def _noise_pairs(text: str, where: str) -> dict[str, float]:
    """``"vision=0.1, touch=0"`` → ``{"vision": 0.1, "touch": 0.0}``; ConfigError naming ``where``."""
    pairs = {}
    for item in (v for v in text.split(",") if v.strip()):
        name, sep, std = item.partition("=")
        try:
            value = float(std) if sep else None
        except ValueError:
            value = None
        if value is None:
            raise ConfigError(f"{where}: {item.strip()!r} is not MODALITY=STD")
        pairs[name.strip()] = value
    return pairs


# =========================================================================== babbling
def _smooth_profile(n_steps: int) -> np.ndarray:
    """Weights (summing to 1) that spread a move over ``n_steps``: a half sine, so the
    command rises from near 0 and falls back, as in the iCub's babbling."""
    weights = np.sin(np.pi * np.arange(1, n_steps + 1) / (n_steps + 1))
    return weights / weights.sum()


def _move(start: np.ndarray, goal: np.ndarray, min_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Velocity commands ``[n, 4]`` (rad/s) taking the joints from ``start`` to ``goal``
    along the straight line in joint space, as fast as the speed limits allow plus
    0..EXTRA_MOVE_STEPS steps, never faster than MAX_JOINT_SPEED_RAD_S."""
    displacement = goal - start
    n = min_steps
    while (np.abs(displacement) * _smooth_profile(n).max() / TIME_STEP_S > MAX_JOINT_SPEED_RAD_S).any():
        n += 1
    n += int(rng.integers(0, EXTRA_MOVE_STEPS + 1))
    return _smooth_profile(n)[:, None] * displacement[None, :] / TIME_STEP_S


def _path(start: np.ndarray, commands: np.ndarray) -> np.ndarray:
    """Joint angles after each command of a move, ``[n, 4]``."""
    return start + TIME_STEP_S * np.cumsum(commands, axis=0)


def _inside_limits(angles: np.ndarray) -> bool:
    margin = JOINT_MARGIN * (JOINT_LIMITS_RAD[:, 1] - JOINT_LIMITS_RAD[:, 0])
    return bool(
        np.all(np.isfinite(angles))
        and np.all(angles >= JOINT_LIMITS_RAD[:, 0] + margin)
        and np.all(angles <= JOINT_LIMITS_RAD[:, 1] - margin)
    )


def _in_view(angles: np.ndarray) -> bool:
    """Whether the fingertip lies in front of the shoulder and inside both images
    (VIEW_MARGIN_PX from the border) at every pose."""
    tip = fingertip_position(angles)
    pixels = project_to_cameras(tip)
    size = np.tile(np.asarray(IMAGE_SIZE_PX, dtype=np.float64), 2)
    inside = np.all(pixels >= VIEW_MARGIN_PX) and np.all(pixels <= size - VIEW_MARGIN_PX)
    return bool(np.all(tip[..., 1] > 0) and inside)


def _clear_and_in_view(angles: np.ndarray, clearance: float) -> bool:
    """Whether the fingertip stays ``clearance`` above the key tops and in view at every pose."""
    return bool(np.all(fingertip_position(angles)[..., 2] >= KEY_TOP_Z_M + clearance)) and _in_view(angles)


def _random_free_pose(rng: np.random.Generator) -> np.ndarray:
    """A pose uniform in the joint box (inside the margins) with the fingertip clear
    above the key tops, in front of the shoulder and in view of both cameras."""
    margin = JOINT_MARGIN * (JOINT_LIMITS_RAD[:, 1] - JOINT_LIMITS_RAD[:, 0])
    for _ in range(MAX_TRIES):
        pose = rng.uniform(JOINT_LIMITS_RAD[:, 0] + margin, JOINT_LIMITS_RAD[:, 1] - margin)
        if _clear_and_in_view(pose, FREE_CLEARANCE_M):
            return pose
    raise RuntimeError("simulator: no free pose found; the babbling constants contradict each other")


def _random_key_poses(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hover, press and release poses for one key press: the fingertip above a random
    point of a random key, then pushed into it, then lifted (to a new height)."""
    x_low, _ = keyboard_x_range()
    for _ in range(MAX_TRIES):
        key = rng.integers(KEY_COUNT)
        x = x_low + key * KEY_WIDTH_M + rng.uniform(KEY_MARGIN_M, KEY_WIDTH_M - KEY_MARGIN_M)
        y = rng.uniform(KEYBOARD_NEAR_Y_M + KEY_MARGIN_M, KEYBOARD_FAR_Y_M - KEY_MARGIN_M)
        pitch = rng.uniform(*FINGER_PITCH_RANGE_RAD)
        hover, release = KEY_TOP_Z_M + rng.uniform(*HOVER_HEIGHT_RANGE_M, size=2)
        press = KEY_TOP_Z_M - rng.uniform(*PRESS_DEPTH_RANGE_M)
        poses = inverse_kinematics(np.array([[x, y, hover], [x, y, press], [x, y, release]]), np.full(3, pitch))
        if _inside_limits(poses) and _in_view(poses):
            return poses[0], poses[1], poses[2]
    raise RuntimeError("simulator: no key pose inside the joint limits; the constants contradict each other")


def plan_commands(
    n_steps: int, rng: np.random.Generator, press_probability: float, pause_probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Motor babbling: velocity commands ``[n_steps, 4]`` (rad/s) and the joint angles
    ``[n_steps + 1, 4]`` they produce from a random start (``angles[k+1] = angles[k] +
    TIME_STEP_S * commands[k]``).

    The arm repeats: with ``press_probability`` it plays a key (moves above it, pushes it
    down over at least PRESS_MIN_STEPS, holds it HOLD_STEPS, lifts off), otherwise it moves
    to a random free pose; after a move it pauses with ``pause_probability``. Every move
    is a straight line in joint space between poses inside the joint limits, so the joints
    never leave them, and every move except a press keeps the fingertip above the keys
    (targets that would make the path dip are redrawn).
    """
    pose = _random_free_pose(rng)
    start = pose
    pieces, total = [], 0

    def add(commands):
        nonlocal total
        pieces.append(commands)
        total += len(commands)

    def pause():
        add(np.zeros((int(rng.integers(PAUSE_STEPS[0], PAUSE_STEPS[1] + 1)), 4)))

    def clear_move(draw, what):
        """Redraw the target until the move from ``pose`` to it keeps clear of the keys."""
        for _ in range(MAX_TRIES):
            poses = draw()
            commands = _move(pose, poses[0], MIN_MOVE_STEPS, rng)
            if _clear_and_in_view(_path(pose, commands), PATH_CLEARANCE_M):
                return poses, commands
        raise RuntimeError(f"simulator: no {what} keeps clear of the keyboard")

    while total < n_steps:
        if rng.random() < press_probability:
            (hover, press, release), approach = clear_move(lambda: _random_key_poses(rng), "approach to a key")
            add(approach)
            add(_move(hover, press, PRESS_MIN_STEPS, rng))
            add(np.zeros((int(rng.integers(HOLD_STEPS[0], HOLD_STEPS[1] + 1)), 4)))
            add(_move(press, release, PRESS_MIN_STEPS, rng))
            pose = release
        else:
            (target,), commands = clear_move(lambda: (_random_free_pose(rng),), "free move")
            add(commands)
            pose = target
        if rng.random() < pause_probability:
            pause()
    commands = np.concatenate(pieces)[:n_steps]
    angles = np.concatenate([start[None], _path(start, commands)])
    return commands, angles


# =========================================================================== data set
def _stream(purpose: Purpose, seed: int, part: int = 0, name: str | None = None) -> np.random.Generator:
    """An independent random stream per purpose (intermodal.streams), part and modality, so
    that e.g. adding a distractor leaves every other column bitwise unchanged."""
    return numpy_generator(purpose, seed, part, 0 if name is None else zlib.crc32(name.encode()))


def _signals(config: SimConfig, n_rows: int, part: int) -> dict[str, np.ndarray]:
    """Every modality as a time series ``[n_rows + 1, size]``, normalised, noisy, clipped."""
    rng = _stream(Purpose.SIM_TRAJECTORY, config.seed, part)
    commands, angles = plan_commands(n_rows + 1, rng, config.press_probability, config.pause_probability)
    # n_rows rows need n_rows + 1 steps; the command of the last step is the last row's
    # motor(t), and the pose it would lead to lies beyond the data.
    angles = angles[:-1]
    tip = fingertip_position(angles)
    pixels = project_to_cameras(tip)
    if config.vision_noise > 0:
        pixels = pixels + _stream(Purpose.SIM_PIXEL_NOISE, config.seed, part).normal(
            0.0, config.vision_noise, pixels.shape
        )
    touch, sound = contact_from_angles(angles)
    series = {
        "joints": angles_to_joints(angles),
        "vision": pixels_to_vision(pixels),
        "touch": touch[:, None],
        "sound": sound[:, None],
        "motor": commands / MAX_JOINT_SPEED_RAD_S,
    }
    for name, std in config.noise.items():
        if name in series and std > 0:
            noise = _stream(Purpose.SIM_MODALITY_NOISE, config.seed, part, name).normal(0.0, std, series[name].shape)
            series[name] = series[name] + noise
    series = {name: np.clip(values, -1.0, 1.0) for name, values in series.items()}
    bits = {}  # the synergy triple's bits as drawn (their product ignores their own noise)
    for name, size, source in config.distractor_modalities():
        if source is None:
            values = _stream(Purpose.SIM_DISTRACTOR, config.seed, part, name).uniform(-1.0, 1.0, (len(angles), size))
        elif source == RANDOM_BIT:
            # One bit per row, written in each of the modality's columns (xor:SIZE).
            draws = _stream(Purpose.SIM_DISTRACTOR, config.seed, part, name).integers(0, 2, (len(angles), 1))
            values = bits[name] = np.repeat(2.0 * draws - 1.0, size, axis=1)
        elif "*" in source:
            a, b = source.split("*")
            values = bits[a] * bits[b]
        else:
            values = series[source].copy()
        std = config.noise.get(name, 0.0)
        if std > 0:
            noise = _stream(Purpose.SIM_MODALITY_NOISE, config.seed, part, name).normal(0.0, std, values.shape)
            values = np.clip(values + noise, -1.0, 1.0)
        series[name] = values
    for name in config.drop:
        del series[name]
    return series


def _rows(series: dict[str, np.ndarray], desc: DatasetDescription) -> np.ndarray:
    """Rows from time series: row i holds step i+1 as ``t`` and step i as ``t-1``."""
    blocks = []
    for m in desc.modalities:
        values = series[m.name]
        blocks += [values[1:], values[:-1]]  # t, then t-1: the description's column order
    return np.ascontiguousarray(np.concatenate(blocks, axis=1))


@functools.lru_cache(maxsize=1)
def _icub_description() -> DatasetDescription:
    return load_description(builtin_description_path(ICUB_DESCRIPTION))


def _muting_patterns(
    names: list[str],
    distractors: list[str],
    bits: frozenset[str] = frozenset(),
    copies: dict[str, str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """The iCub patterns without dropped modalities' selectors; a distractor is muted
    wherever the pattern mutes "every other modality": at step t in a pattern that only
    mutes step t (t-1-only), entirely in any other non-empty pattern. The synergy triple's
    ``bits`` are the exception: :data:`SYNERGY_PATTERN` gives them and mutes their product
    only, so that a pattern asks for the product from the bits (none would otherwise).
    ``copies`` (copy name → source): each copy whose source has an ``M-only`` pattern gets
    its own, the copy given alone (:data:`ALONE_SUFFIX`)."""
    out = {}
    for pattern, selectors in _icub_description().muting_patterns.items():
        kept = [s for s in selectors if s.partition("@")[0] in names]
        if selectors:
            steps = {s.partition("@")[2] for s in selectors}
            if "" in steps:
                kept += [d for d in distractors if not (pattern == SYNERGY_PATTERN and d in bits)]
            else:
                kept += [f"{d}@{step}" for d in distractors for step in sorted(steps)]
        out[pattern] = tuple(kept)
    for copy, source in (copies or {}).items():
        alone = out.get(source + ALONE_SUFFIX)
        if alone is not None and source in names:
            out[copy + ALONE_SUFFIX] = tuple(source if m == copy else m for m in alone)
    return out


def _architectures(names: list[str]) -> dict[str, dict]:
    """The iCub table's presets restricted to the modalities present (distractors get
    model.py's widths derived from their size)."""
    out = {}
    for preset, table in _icub_description().architectures.items():
        entry = {}
        for key, value in table.items():
            entry[key] = {m: w for m, w in value.items() if m in names} if isinstance(value, dict) else list(value)
        out[preset] = entry
    return out


def description(config: SimConfig | None = None) -> DatasetDescription:
    """The description of the data set ``config`` produces (no rows are simulated)."""
    config = config or SimConfig()
    distractors = config.distractor_modalities()
    modalities = [Modality(n, s) for n, s in BASE_MODALITIES if n not in config.drop]
    modalities += [Modality(n, s) for n, s, _ in distractors]
    names = [m.name for m in modalities]
    return DatasetDescription(
        name=DESCRIPTION_NAME,
        modalities=tuple(modalities),
        muting_patterns=_muting_patterns(
            names,
            [n for n, _, _ in distractors],
            frozenset(n for n, _, s in distractors if s == RANDOM_BIT),
            {n: s for n, _, s in distractors if s in names} if config.teach_copies else None,
        ),
        architectures=_architectures(names),
    )


def simulate(config: SimConfig | None = None, **overrides) -> Dataset:
    """Simulate the data set: ``config`` (default :class:`SimConfig`) with ``overrides``
    (SimConfig field names) applied, all of it validated again; a bad or unknown option
    raises :class:`~intermodal.errors.ConfigError` naming it. Same configuration, same
    arrays, bit for bit."""
    if config is not None and not isinstance(config, SimConfig):
        raise ConfigError(
            f"config: expected None or a SimConfig (options as keywords: simulate(n_train=...)); got "
            f"{type(config).__name__}"
        )
    if config is None:
        config = SimConfig.from_mapping(overrides, "simulator options")
    elif overrides:
        config = SimConfig.from_mapping({**config.model_dump(), **overrides}, "simulator options")
    desc = description(config)
    train = _rows(_signals(config, config.n_train, part=0), desc)
    test = _rows(_signals(config, config.n_test, part=1), desc)
    if config.shuffle_train:
        train = train[_stream(Purpose.SIM_SHUFFLE, config.seed).permutation(len(train))]
    options = ", ".join([f"seed={config.seed}"] + [f"{k}={v!r}" for k, v in config.changed().items()])
    return Dataset(desc, train, test, origin=f"sim({options})")

"""A deterministic simulator of a robot arm playing a keyboard: the default data set.

It writes rows in the layout of the iCub piano data (Zambelli, Cully & Demiris 2020): five
modalities, each at steps ``t`` and ``t-1``, normalised to [-1, 1]. Because every signal is
computed from a known model, the simulator is where the information measures can be checked
against a ground truth (a modality of pure noise must come out uninformative, a copy of a
modality must be redundant with it, ...).

The world (all lengths in metres, angles in radians; ``docs/simulator.md`` explains it at
length):

* **Arm.** Four revolute joints at the shoulder origin: ``q0`` shoulder yaw (about the
  vertical axis; 0 = straight ahead), ``q1`` shoulder pitch (upper-arm elevation above the
  horizontal), ``q2`` elbow and ``q3`` wrist (pitch, each relative to the previous link).
  Links of :data:`LINK_LENGTHS_M`. :func:`fingertip_position` is the forward kinematics.
* **Motor.** A velocity command per joint and step. The joints integrate it exactly:
  ``q(t) = q(t-1) + TIME_STEP_S * v(t-1)``; in normalised units
  ``joints(t) - joints(t-1) = MOTOR_GAIN * motor(t-1)`` (:data:`MOTOR_GAIN`). The babbling
  (:func:`plan_commands`) stays inside the joint limits, so nothing is ever clipped.
* **Vision.** The fingertip projected into two pinhole cameras (the robot's eyes), 2 pixel
  coordinates each: ``(u_left, v_left, u_right, v_right)``; optional pixel noise.
* **Touch.** 1 while the fingertip is on or below the top surface of a key, else -1.
* **Sound.** A key pressed at least :data:`SOUND_DEPTH_M` down sounds: a value in
  :data:`SOUND_ON_RANGE` growing with the press depth; else -1. Sound implies touch.

Entry points: :class:`SimConfig` (every option with its default), :func:`simulate`, and
:func:`compare_with` (per-column statistics of two data sets side by side).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .data import Dataset, DatasetDescription, Modality, builtin_description_path, load_description

__all__ = [
    "SimConfig",
    "simulate",
    "compare_with",
    "fingertip_position",
    "inverse_kinematics",
    "project_to_cameras",
    "joints_to_angles",
    "angles_to_joints",
    "vision_from_joints",
    "contact_from_joints",
    "contact_from_angles",
    "description",
    "plan_commands",
    "BASE_MODALITIES",
    "MOTOR_GAIN",
]

# =========================================================================== constants
# World frame: origin at the shoulder, x to the robot's right, y straight ahead, z up.

TIME_STEP_S = 0.1  # one row step; the joints integrate the velocity command over it

# --- arm
LINK_LENGTHS_M = (0.25, 0.22, 0.10)  # upper arm, forearm, hand (wrist to fingertip)
JOINT_NAMES = ("shoulder_yaw", "shoulder_pitch", "elbow", "wrist")
# Joint limits, one [low, high] row per joint. They are also the normalisation range of
# the joints: low -> -1, high -> +1. They enclose every pose that plays a key with room to
# spare, so that free babbling explores around the keyboard too.
JOINT_LIMITS_RAD = np.array(
    [
        [-0.9, 0.9],  # shoulder yaw: keys span about ±0.6
        [-0.4, 0.75],  # shoulder pitch: keys need about -0.1..0.4
        [-2.3, -0.8],  # elbow (negative = forearm bent down): keys need about -2.15..-1.1
        [-0.5, 1.5],  # wrist: keys need about -0.35..1.25
    ]
)
# Largest speed a motor command can ask for; also the normalisation range of the motor
# modality (±max -> ±1). Each is 2 x the joint's half range per second, so that a full
# command moves every joint by 0.2 of its normalised range per step (MOTOR_GAIN = 0.2; the
# iCub data's slopes are 0.13..0.30) and the four motor columns spread alike.
MAX_JOINT_SPEED_RAD_S = np.array([1.8, 1.15, 1.5, 2.0])

# --- keyboard: a row of KEY_COUNT keys lying on a table in front of the shoulder
KEY_COUNT = 8
KEY_WIDTH_M = 0.04  # along x; the keyboard spans x in ±KEY_COUNT*KEY_WIDTH_M/2
KEYBOARD_NEAR_Y_M = 0.22  # near edge of the keys (towards the robot)
KEYBOARD_FAR_Y_M = 0.36  # far edge of the keys
KEY_TOP_Z_M = -0.28  # height of a key's top surface at rest (0.28 m below the shoulder)
KEY_TRAVEL_M = 0.012  # how far a key goes down before it hits the keyboard's floor
SOUND_DEPTH_M = 0.005  # a key sounds once pressed at least this far
SOUND_ON_RANGE = (0.85, 1.0)  # sound value at SOUND_DEPTH_M .. at full KEY_TRAVEL_M (cf. iCub 0.861..1)
TOUCH_ON, TOUCH_OFF = 1.0, -1.0  # touch values (as the iCub data's)
SOUND_OFF = -1.0  # sound value of silence

# --- cameras: the two eyes of a head left of and above the (right) shoulder, verging on
# the keyboard's centre, like the iCub's. Images of IMAGE_SIZE_PX, as the iCub's cameras.
IMAGE_SIZE_PX = (320, 240)  # width, height; also the vision normalisation range (0..size -> -1..1)
FOCAL_LENGTH_PX = 257.0  # both cameras (an iCub eye has about this at 320x240)
HEAD_CENTRE_M = np.array([-0.11, -0.02, 0.24])  # midpoint between the eyes
EYE_BASELINE_M = 0.068  # distance between the eyes
GAZE_TARGET_M = np.array([0.0, 0.29, KEY_TOP_Z_M])  # both eyes look at the keyboard's centre

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
DESCRIPTION_NAME = "sim-keyboard-arm"
ICUB_DESCRIPTION = "icub-zambelli2020"  # muting patterns and architecture table come from it


def _joint_half_range() -> np.ndarray:
    return (JOINT_LIMITS_RAD[:, 1] - JOINT_LIMITS_RAD[:, 0]) / 2


# Normalised joint change per step for a normalised motor command of 1:
# joints(t) - joints(t-1) = MOTOR_GAIN * motor(t-1), exactly (no clipping ever happens).
MOTOR_GAIN = TIME_STEP_S * MAX_JOINT_SPEED_RAD_S / _joint_half_range()


def _camera_matrix(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """3x4 pinhole projection ``K [R | -R c]`` of a camera at ``position`` looking at
    ``target``, image x to the right and image y down (the world's z is up)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    intrinsics = np.array(
        [[FOCAL_LENGTH_PX, 0.0, IMAGE_SIZE_PX[0] / 2], [0.0, FOCAL_LENGTH_PX, IMAGE_SIZE_PX[1] / 2], [0.0, 0.0, 1.0]]
    )
    return intrinsics @ np.hstack([rotation, -(rotation @ position)[:, None]])


CAMERA_POSITIONS_M = np.stack(
    [HEAD_CENTRE_M - [EYE_BASELINE_M / 2, 0, 0], HEAD_CENTRE_M + [EYE_BASELINE_M / 2, 0, 0]]
)  # left eye, right eye
CAMERA_MATRICES = np.stack([_camera_matrix(p, GAZE_TARGET_M) for p in CAMERA_POSITIONS_M])  # [2, 3, 4]


# =========================================================================== options
@dataclass(frozen=True)
class SimConfig:
    """Every option of the simulator, with its default. Values may also be strings (as
    typed on a command line): numbers, ``true``/``false``, comma-separated lists, and
    ``name=std`` pairs for ``noise``.

    seed : int
        Seeds every random choice; the same configuration gives bitwise the same arrays.
    n_train, n_test : int
        Rows of the training part (one trajectory of ``n_train + 1`` steps, rows shuffled
        when ``shuffle_train``) and of the test part (one time-ordered trajectory).
        The study evaluates on the first 1024 test rows, so keep ``n_test >= 1024``.
    shuffle_train : bool
        Shuffle the training rows, as the iCub training file is.
    vision_noise : float
        Standard deviation, in pixels, of Gaussian noise added to each camera coordinate
        (images are 320 x 240 px, so 1 px is 1/160 normalised units in u, 1/120 in v).
    noise : {modality: std}
        Gaussian noise, in normalised units, added to a modality's values (after
        ``vision_noise``; before the copy of a ``copy-MOD`` distractor is taken); values
        are then clipped into [-1, 1]. Any modality of the data set, distractors included.
    distractors : tuple of str
        Extra modalities, in order: ``"noise"`` (values uniform in [-1, 1], independent
        of everything, ``NOISE_DISTRACTOR_SIZE`` wide), ``"noise:SIZE"``, or
        ``"copy-MOD"`` (the values of modality MOD, its noise included). A repeated name
        gets ``-2``, ``-3``, ... appended (``noise``, ``noise-2``).
    drop : tuple of str
        Modalities of the arm (joints, vision, touch, sound, motor) left out of the data
        set; muting patterns lose their selectors.
    press_probability : float
        Chance that the next move plays a key (approach, press, hold, release) rather than
        a free move to a random pose above the keyboard.
    pause_probability : float
        Chance of a pause (all commands 0) after a move.
    """

    seed: int = 0
    n_train: int = 1845
    n_test: int = 1487
    shuffle_train: bool = True
    vision_noise: float = 1.0
    noise: Mapping[str, float] = field(default_factory=dict)
    distractors: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    press_probability: float = 0.6
    pause_probability: float = 0.15

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("seed", _as_int("seed", self.seed, minimum=0))
        set_("n_train", _as_int("n_train", self.n_train, minimum=1))
        set_("n_test", _as_int("n_test", self.n_test, minimum=1))
        set_("shuffle_train", _as_bool("shuffle_train", self.shuffle_train))
        set_("vision_noise", _as_float("vision_noise", self.vision_noise, minimum=0.0))
        set_("press_probability", _as_float("press_probability", self.press_probability, 0.0, 1.0))
        set_("pause_probability", _as_float("pause_probability", self.pause_probability, 0.0, 1.0))
        set_("drop", _as_names("drop", self.drop))
        set_("distractors", _as_names("distractors", self.distractors, unique=False))
        set_("noise", _as_noise(self.noise))
        base = [name for name, _ in BASE_MODALITIES]
        for name in self.drop:
            if name not in base:
                raise ValueError(f"drop: {name!r} is not a modality of the arm; expected some of {base}")
        kept = [name for name in base if name not in self.drop]
        names = kept + [name for name, _, _ in self.distractor_modalities()]
        if not names:
            raise ValueError("drop: every modality is dropped and no distractor is added; nothing is left")
        for name in self.noise:
            if name not in names:
                raise ValueError(f"noise: {name!r} is not a modality of this data set; it has {names}")

    def distractor_modalities(self) -> list[tuple[str, int, str | None]]:
        """``(name, size, source)`` of each distractor; ``source`` is None for noise."""
        sizes = dict(BASE_MODALITIES)
        out, seen = [], set()
        for spec in self.distractors:
            noise = re.fullmatch(r"noise(?::(\d+))?", spec)
            copy = re.fullmatch(r"copy-([A-Za-z]+)", spec)
            if noise:
                base_name, size, source = "noise", int(noise.group(1) or NOISE_DISTRACTOR_SIZE), None
                if size < 1:
                    raise ValueError(f"distractors: {spec!r} asks for {size} columns; expected at least 1")
            elif copy:
                source = copy.group(1)
                if source not in sizes:
                    raise ValueError(f"distractors: {spec!r} copies {source!r}; it can copy one of {list(sizes)}")
                if source in self.drop:
                    raise ValueError(f"distractors: {spec!r} copies {source!r}, which drop removes")
                base_name, size = f"copy-{source}", sizes[source]
            else:
                raise ValueError(f"distractors: {spec!r} is not 'noise', 'noise:SIZE' or 'copy-MODALITY'")
            name, k = base_name, 1
            while name in seen:
                k += 1
                name = f"{base_name}-{k}"
            seen.add(name)
            out.append((name, size, source))
        return out

    def changed(self) -> dict:
        """The options that differ from their defaults (besides ``seed``)."""
        default = SimConfig()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "seed" and getattr(self, f.name) != getattr(default, f.name)
        }


def _as_int(option, value, minimum):
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option}: {value!r} is not a whole number") from None
    if number < minimum:
        raise ValueError(f"{option}: {number} is below the smallest allowed value {minimum}")
    return number


def _as_float(option, value, minimum=None, maximum=None):
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option}: {value!r} is not a number") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        allowed = f"[{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{option}: {number} is outside the allowed range {allowed}")
    return number


def _as_bool(option, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{option}: {value!r} is not true or false")


def _as_names(option, value, unique=True):
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        names = [str(v).strip() for v in value]
    except TypeError:
        raise ValueError(f"{option}: {value!r} is not a list of names") from None
    if unique:
        names = list(dict.fromkeys(names))
    return tuple(names)


def _as_noise(value):
    if value is None:
        return {}
    if isinstance(value, str):
        pairs = {}
        for item in (v for v in value.split(",") if v.strip()):
            name, sep, std = item.partition("=")
            if not sep:
                raise ValueError(f"noise: {item!r} is not MODALITY=STD")
            pairs[name.strip()] = std
        value = pairs
    if not isinstance(value, Mapping):
        raise ValueError(f"noise: {value!r} is not a mapping of modality name to standard deviation")
    return {str(name): _as_float(f"noise[{name!r}]", std, minimum=0.0) for name, std in sorted(value.items())}


# =========================================================================== physics
def fingertip_position(angles: np.ndarray) -> np.ndarray:
    """Forward kinematics: joint angles ``[..., 4]`` (radians) -> fingertip ``[..., 3]``
    (x right, y ahead, z up; metres, shoulder at the origin)."""
    yaw = angles[..., 0]
    link_pitch = np.cumsum(angles[..., 1:], axis=-1)  # absolute elevation of each link
    lengths = np.asarray(LINK_LENGTHS_M)
    reach = (lengths * np.cos(link_pitch)).sum(-1)  # horizontal distance from the shoulder axis
    height = (lengths * np.sin(link_pitch)).sum(-1)
    return np.stack([reach * np.sin(yaw), reach * np.cos(yaw), height], axis=-1)


def inverse_kinematics(point: np.ndarray, finger_pitch: np.ndarray) -> np.ndarray:
    """Joint angles ``[..., 4]`` that put the fingertip at ``point [..., 3]`` with the hand
    at absolute elevation ``finger_pitch`` (radians, negative = pointing down), elbow up.
    NaN where the point is out of reach."""
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    upper, fore, hand = LINK_LENGTHS_M
    yaw = np.arctan2(x, y)
    wrist_reach = np.hypot(x, y) - hand * np.cos(finger_pitch)
    wrist_height = z - hand * np.sin(finger_pitch)
    cos_elbow = (wrist_reach**2 + wrist_height**2 - upper**2 - fore**2) / (2 * upper * fore)
    with np.errstate(invalid="ignore"):
        elbow = -np.arccos(np.where(np.abs(cos_elbow) <= 1, cos_elbow, np.nan))
    shoulder = np.arctan2(wrist_height, wrist_reach) - np.arctan2(fore * np.sin(elbow), upper + fore * np.cos(elbow))
    wrist = finger_pitch - shoulder - elbow
    return np.stack([yaw, shoulder, elbow, wrist], axis=-1)


def joints_to_angles(joints: np.ndarray) -> np.ndarray:
    """Normalised joints ``[..., 4]`` in [-1, 1] -> angles in radians."""
    low, high = JOINT_LIMITS_RAD[:, 0], JOINT_LIMITS_RAD[:, 1]
    return (high + low) / 2 + np.asarray(joints) * (high - low) / 2


def angles_to_joints(angles: np.ndarray) -> np.ndarray:
    """Angles in radians ``[..., 4]`` -> normalised joints (the limits map to ±1)."""
    low, high = JOINT_LIMITS_RAD[:, 0], JOINT_LIMITS_RAD[:, 1]
    return (np.asarray(angles) - (high + low) / 2) / ((high - low) / 2)


def project_to_cameras(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[..., 4]`` = (u_left, v_left, u_right, v_right) of 3-D points
    ``[..., 3]`` in the two cameras (u to the right, v down, origin at the top left)."""
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    image = np.einsum("cij,...j->...ci", CAMERA_MATRICES, homogeneous)  # [..., camera, 3]
    return (image[..., :2] / image[..., 2:]).reshape(points.shape[:-1] + (4,))


def _pixels_to_vision(pixels: np.ndarray) -> np.ndarray:
    size = np.tile(np.asarray(IMAGE_SIZE_PX, dtype=np.float64), 2)
    return 2 * pixels / size - 1


def vision_from_joints(joints: np.ndarray) -> np.ndarray:
    """Noise-free vision ``[..., 4]`` (normalised, clipped into [-1, 1]) from normalised
    joints ``[..., 4]``: the fixed function the simulator's vision follows."""
    pixels = project_to_cameras(fingertip_position(joints_to_angles(joints)))
    return np.clip(_pixels_to_vision(pixels), -1.0, 1.0)


def _keyboard_x_range() -> tuple[float, float]:
    half = KEY_COUNT * KEY_WIDTH_M / 2
    return -half, half


def contact_from_angles(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Touch and sound values ``[...]`` for joint angles ``[..., 4]`` (radians)."""
    tip = fingertip_position(angles)
    x_low, x_high = _keyboard_x_range()
    over_keys = (tip[..., 0] >= x_low) & (tip[..., 0] <= x_high)
    over_keys &= (tip[..., 1] >= KEYBOARD_NEAR_Y_M) & (tip[..., 1] <= KEYBOARD_FAR_Y_M)
    depth = np.minimum(KEY_TOP_Z_M - tip[..., 2], KEY_TRAVEL_M)  # a key stops at its floor
    touching = over_keys & (depth >= 0)
    sounding = touching & (depth >= SOUND_DEPTH_M)
    loudness = np.clip((depth - SOUND_DEPTH_M) / (KEY_TRAVEL_M - SOUND_DEPTH_M), 0.0, 1.0)
    low, high = SOUND_ON_RANGE
    touch = np.where(touching, TOUCH_ON, TOUCH_OFF)
    sound = np.where(sounding, low + (high - low) * loudness, SOUND_OFF)
    return touch, sound


def contact_from_joints(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Touch and sound values ``[...]`` for normalised joints ``[..., 4]``."""
    return contact_from_angles(joints_to_angles(joints))


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
    return bool(np.all(tip[..., 1] > 0) and np.all(pixels >= VIEW_MARGIN_PX) and np.all(pixels <= size - VIEW_MARGIN_PX))


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
    x_low, _ = _keyboard_x_range()
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


def plan_commands(n_steps: int, rng: np.random.Generator, press_probability: float, pause_probability: float) -> tuple[np.ndarray, np.ndarray]:
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
def _stream(seed: int, *purpose: int) -> np.random.Generator:
    """An independent random stream per purpose, so that e.g. adding a distractor leaves
    every other column bitwise unchanged."""
    return np.random.default_rng(np.random.SeedSequence([seed, *purpose]))


def _name_code(name: str) -> int:
    return zlib.crc32(name.encode())


def _signals(config: SimConfig, n_rows: int, part: int) -> dict[str, np.ndarray]:
    """Every modality as a time series ``[n_rows + 1, size]``, normalised, noisy, clipped."""
    rng = _stream(config.seed, 1, part)
    commands, angles = plan_commands(n_rows + 1, rng, config.press_probability, config.pause_probability)
    # n_rows rows need n_rows + 1 steps; the command of the last step is the last row's
    # motor(t), and the pose it would lead to lies beyond the data.
    angles = angles[:-1]
    tip = fingertip_position(angles)
    pixels = project_to_cameras(tip)
    if config.vision_noise > 0:
        pixels = pixels + _stream(config.seed, 2, part).normal(0.0, config.vision_noise, pixels.shape)
    touch, sound = contact_from_angles(angles)
    series = {
        "joints": angles_to_joints(angles),
        "vision": _pixels_to_vision(pixels),
        "touch": touch[:, None],
        "sound": sound[:, None],
        "motor": commands / MAX_JOINT_SPEED_RAD_S,
    }
    for name, std in config.noise.items():
        if name in series and std > 0:
            series[name] = series[name] + _stream(config.seed, 3, part, _name_code(name)).normal(0.0, std, series[name].shape)
    series = {name: np.clip(values, -1.0, 1.0) for name, values in series.items()}
    for name, size, source in config.distractor_modalities():
        if source is None:
            values = _stream(config.seed, 4, part, _name_code(name)).uniform(-1.0, 1.0, (len(angles), size))
        else:
            values = series[source].copy()
        std = config.noise.get(name, 0.0)
        if std > 0:
            values = np.clip(values + _stream(config.seed, 3, part, _name_code(name)).normal(0.0, std, values.shape), -1.0, 1.0)
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


def _muting_patterns(names: list[str], distractors: list[str]) -> dict[str, tuple[str, ...]]:
    """The iCub patterns without dropped modalities' selectors; a distractor is muted
    wherever the pattern mutes "every other modality": at step t in a pattern that only
    mutes step t (t-1-only), entirely in any other non-empty pattern."""
    out = {}
    for pattern, selectors in _icub_description().muting_patterns.items():
        kept = [s for s in selectors if s.partition("@")[0] in names]
        if selectors:
            steps = {s.partition("@")[2] for s in selectors}
            if "" in steps:
                kept += distractors
            else:
                kept += [f"{d}@{step}" for d in distractors for step in sorted(steps)]
        out[pattern] = tuple(kept)
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
        muting_patterns=_muting_patterns(names, [n for n, _, _ in distractors]),
        architectures=_architectures(names),
    )


def simulate(config: SimConfig | None = None, **overrides) -> Dataset:
    """Simulate the data set: ``config`` (default :class:`SimConfig`) with ``overrides``
    (SimConfig field names) applied. Same configuration, same arrays, bit for bit."""
    allowed = [f.name for f in dataclasses.fields(SimConfig)]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"simulator option(s) {unknown} unknown; the options are {allowed}")
    config = dataclasses.replace(config, **overrides) if config is not None else SimConfig(**overrides)
    desc = description(config)
    train = _rows(_signals(config, config.n_train, part=0), desc)
    test = _rows(_signals(config, config.n_test, part=1), desc)
    if config.shuffle_train:
        train = train[_stream(config.seed, 5).permutation(len(train))]
    options = ", ".join([f"seed={config.seed}"] + [f"{k}={v!r}" for k, v in config.changed().items()])
    return Dataset(desc, train, test, origin=f"sim({options})")


# =========================================================================== comparison
def compare_with(dataset_a: Dataset, dataset_b: Dataset, *, part: str = "all", labels: tuple[str, str] | None = None):
    """Per-column statistics of two data sets side by side, as a pandas DataFrame.

    One row per column name of either data set (union, in ``dataset_a``'s order then the
    rest), columns ``"<label> min|max|mean|std"`` for each (NaN where a data set lacks the
    column), then one row ``"<modality> on-frequency"`` each for touch and sound (whichever
    exist): the fraction of rows whose value at ``t`` is above 0, in the ``mean`` columns.
    ``part``: ``"train"``, ``"test"`` or ``"all"`` (both parts stacked).
    """
    import pandas as pd

    if part not in ("train", "test", "all"):
        raise ValueError(f"part: {part!r}; expected 'train', 'test' or 'all'")
    labels = labels or (dataset_a.description.name, dataset_b.description.name)
    if labels[0] == labels[1]:
        labels = (f"{labels[0]} (a)", f"{labels[1]} (b)")

    def rows(ds):
        return {"train": ds.train, "test": ds.test, "all": np.concatenate([ds.train, ds.test])}[part]

    frames = []
    for label, ds in zip(labels, (dataset_a, dataset_b)):
        values = pd.DataFrame(rows(ds), columns=ds.description.column_names())
        stats = pd.DataFrame({"min": values.min(), "max": values.max(), "mean": values.mean(), "std": values.std()})
        for modality in ("touch", "sound"):
            if modality in ds.description.modality_names:
                on = (values[ds.description.column_names()[ds.description.columns_of(f"{modality}@t")[0]]] > 0).mean()
                stats.loc[f"{modality} on-frequency"] = [np.nan, np.nan, on, np.nan]
        frames.append(stats.add_prefix(f"{label} "))
    order = list(frames[0].index) + [i for i in frames[1].index if i not in frames[0].index]
    frequency_rows = [i for i in order if i.endswith("on-frequency")]
    order = [i for i in order if i not in frequency_rows] + frequency_rows
    return pd.concat(frames, axis=1).reindex(order)

"""The physical world of the keyboard-arm simulator (:mod:`intermodal.sim`): the arm, the
keyboard and the cameras, as constants and fixed functions. Nothing here is random; the
babbling that moves the arm and the rows made from its signals live in :mod:`intermodal.sim`.

World frame: origin at the shoulder, x to the robot's right, y straight ahead, z up; all
lengths in metres, angles in radians (``docs/simulator.md`` explains it at length).

* **Arm.** Four revolute joints at the shoulder origin: ``q0`` shoulder yaw (about the
  vertical axis; 0 = straight ahead), ``q1`` shoulder pitch (upper-arm elevation above the
  horizontal), ``q2`` elbow and ``q3`` wrist (pitch, each relative to the previous link).
  Links of :data:`LINK_LENGTHS_M`. :func:`fingertip_position` is the forward kinematics,
  :func:`inverse_kinematics` its inverse; :func:`joints_to_angles` and
  :func:`angles_to_joints` map between radians and the normalised joints modality.
* **Motor.** A velocity command per joint and step. The joints integrate it exactly:
  ``q(t) = q(t-1) + TIME_STEP_S * v(t-1)``; in normalised units
  ``joints(t) - joints(t-1) = MOTOR_GAIN * motor(t-1)`` (:data:`MOTOR_GAIN`).
* **Vision.** The fingertip projected into two pinhole cameras (the robot's eyes), 2 pixel
  coordinates each: ``(u_left, v_left, u_right, v_right)`` (:func:`project_to_cameras`,
  :func:`vision_from_joints`).
* **Touch.** 1 while the fingertip is on or below the top surface of a key, else -1.
* **Sound.** A key pressed at least :data:`SOUND_DEPTH_M` down sounds: a value in
  :data:`SOUND_ON_RANGE` growing with the press depth; else -1. Sound implies touch
  (:func:`contact_from_angles`, :func:`contact_from_joints`).

This module imports nothing from the package; only :mod:`intermodal.sim` (and the tests)
import it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "fingertip_position",
    "inverse_kinematics",
    "joints_to_angles",
    "angles_to_joints",
    "project_to_cameras",
    "vision_from_joints",
    "contact_from_angles",
    "contact_from_joints",
    "pixels_to_vision",
    "keyboard_x_range",
    "MOTOR_GAIN",
    "CAMERA_MATRICES",
]

# =========================================================================== constants
# World frame: origin at the shoulder, x to the robot's right, y straight ahead, z up.

TIME_STEP_S = 0.1  # one row step; the joints integrate the velocity command over it

# --- arm
LINK_LENGTHS_M = (0.25, 0.22, 0.10)  # upper arm, forearm, hand (wrist to fingertip)
# The joints, in order: shoulder yaw, shoulder pitch, elbow, wrist.
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


def pixels_to_vision(pixels: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[..., 4]`` -> normalised vision (``0..IMAGE_SIZE_PX`` -> -1..1), not clipped."""
    size = np.tile(np.asarray(IMAGE_SIZE_PX, dtype=np.float64), 2)
    return 2 * pixels / size - 1


def vision_from_joints(joints: np.ndarray) -> np.ndarray:
    """Noise-free vision ``[..., 4]`` (normalised, clipped into [-1, 1]) from normalised
    joints ``[..., 4]``: the fixed function the simulator's vision follows."""
    pixels = project_to_cameras(fingertip_position(joints_to_angles(joints)))
    return np.clip(pixels_to_vision(pixels), -1.0, 1.0)


def keyboard_x_range() -> tuple[float, float]:
    """Left and right edges of the keyboard (x, metres)."""
    half = KEY_COUNT * KEY_WIDTH_M / 2
    return -half, half


def contact_from_angles(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Touch and sound values ``[...]`` for joint angles ``[..., 4]`` (radians)."""
    tip = fingertip_position(angles)
    x_low, x_high = keyboard_x_range()
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

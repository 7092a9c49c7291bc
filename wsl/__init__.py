"""wsl: weakly supervised object localization and semantic segmentation from image-level labels."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root and its Hydra configuration tree, found from this file, never from the cwd.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"

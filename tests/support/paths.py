"""Where the checkout and its build outputs are, wherever it was cloned."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"

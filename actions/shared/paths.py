"""Where the repository's own files are: the one definition of the repository root."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout (``actions/shared/paths.py`` is two folders down)."""
NLU_DATA = REPO_ROOT / "nlu-data"
"""The editors' folder."""
VOICES = REPO_ROOT / "voices"
"""Voice settings, lexicon and the prompt cache."""

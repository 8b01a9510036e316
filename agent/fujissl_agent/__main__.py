"""``python -m fujissl_agent``."""

from __future__ import annotations

from .cli import main

main()

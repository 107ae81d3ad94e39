"""Every rule id migsafe can report, with its explanation: the public list of ids.

A view of the registry (`bot.analysis.registry`), kept for the modules that only need
the descriptions.
"""

from __future__ import annotations

from bot.analysis.registry import INFOS
from bot.analysis.rules.meta import DRY_RUN_FAILED, UNPARSED_STATEMENT

RULES = INFOS

__all__ = ["DRY_RUN_FAILED", "RULES", "UNPARSED_STATEMENT"]

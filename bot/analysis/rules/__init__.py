"""The rule families: one module per family, each declaring its rules (`RULES`, a tuple
of `bot.analysis.rule.Rule`) next to their checks. `bot.analysis.registry` gathers them."""

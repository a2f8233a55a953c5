"""Auto top-up: the consent, the settings, and the off-session charges that refill a balance
falling below its threshold. See the README beside this file."""

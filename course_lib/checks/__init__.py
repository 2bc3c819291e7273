"""Exercise checkers. Each runs a student's code against a reference implementation, prints a short
exact / close / max-diff report, and raises ``AssertionError`` with a hint when something is wrong.

Checkers live in topic modules and are re-exported here, so notebooks write
``from course_lib.checks import check_adamw``.
"""

from .optim import check_adamw, check_muon, check_newton_schulz  # noqa: F401
from .report import CheckReport, compare  # noqa: F401

"""The language a checker speaks: the notebook's own. ``tr`` lives in ``course_lib.i18n``; the checkers
import it from here so the grader can reload the checker modules as one set."""

from __future__ import annotations

import re

from course_lib.i18n import notebook_language, tr  # noqa: F401

# The words of the checkers' test-case names ("float32, wd on, tiny grads"; "decay after, efficient"), in
# Korean. The names stay English in the code (tests and the tolerance tables quote them); ``case_name``
# shows them to a Korean reader.
CASE_WORDS_KO = {
    "zero first gradient": "첫 기울기가 0", "tiny grads": "아주 작은 기울기", "large eps": "큰 eps",
    "two groups": "그룹 2개", "wd on": "감쇠 켬", "wd off": "감쇠 끔", "decay before": "감쇠를 업데이트 앞에",
    "decay after": "감쇠를 업데이트 뒤에", "textbook": "교과서 형태", "efficient": "효율적 형태",
    "square": "정사각", "tall": "세로로 긴", "wide": "가로로 긴", "plain momentum": "일반 모멘텀",
    "nesterov": "네스테로프", "original": "original 규칙",
}
_CASE_WORDS = re.compile("|".join(re.escape(w) for w in sorted(CASE_WORDS_KO, key=len, reverse=True)))


def case_name(name: str) -> str:
    """A checker's test-case name in the notebook's language."""
    if notebook_language() != "ko":
        return name
    return _CASE_WORDS.sub(lambda m: CASE_WORDS_KO[m.group(0)], name)

"""The comparison helper every checker uses (in the spirit of makemore's ``cmp``)."""

from __future__ import annotations

import torch

from .i18n import tr


def compare(name: str, mine, reference, atol: float = 0.0, rtol: float = 0.0, verbose: bool = True) -> bool:
    """Print ``exact``/``close``/``max diff`` for two tensors and return whether they are close.

    Raises AssertionError (not a silent False) when shapes differ or the student's value is None.
    """
    if mine is None:
        raise AssertionError(tr(f"{name}: your code returned None (did you forget to return or to update in place?)",
                                f"{name}: 여러분의 코드가 None을 돌려줬습니다(return을 빠뜨렸거나 제자리 업데이트를 "
                                "하지 않았나요?)"))
    mine = torch.as_tensor(mine)
    reference = torch.as_tensor(reference)
    if mine.shape != reference.shape:
        raise AssertionError(tr(f"{name}: shape {tuple(mine.shape)} but the reference has {tuple(reference.shape)}",
                                f"{name}: 모양이 {tuple(mine.shape)}인데 참조 구현은 {tuple(reference.shape)}입니다"))
    a, b = mine.detach().double(), reference.detach().double()
    exact = bool(torch.equal(a, b))
    close = exact or bool(torch.allclose(a, b, atol=atol, rtol=rtol))
    finite = bool(torch.isfinite(a).all())
    maxdiff = float((a - b).abs().max()) if a.numel() and finite else (0.0 if not a.numel() else float("inf"))
    if verbose:
        print(tr(f"{name:<28s} | exact: {str(exact):5s} | close: {str(close):5s} | max diff: {maxdiff:.3e}",
                 f"{name:<28s} | 정확히 일치: {str(exact):5s} | 허용 오차 안: {str(close):5s} | "
                 f"최대 차이: {maxdiff:.3e}"))
    return close


class CheckReport:
    """Collects ``compare`` results and fails once, with every mismatch and a hint."""

    def __init__(self, title: str, verbose: bool = True):
        self.title = title
        self.verbose = verbose
        self.failures: list[str] = []
        if verbose:
            print(f"== {title}")

    def compare(self, name, mine, reference, atol=0.0, rtol=0.0, hint: str = "") -> bool:
        try:
            ok = compare(name, mine, reference, atol, rtol, self.verbose)
        except AssertionError as err:
            self.failures.append(f"{err} {hint}".strip())
            return False
        if not ok:
            self.failures.append(tr(f"{name} differs from the reference. {hint}",
                                    f"{name}: 참조 구현과 다릅니다. {hint}").strip())
        return ok

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def finish(self) -> None:
        if self.failures:
            lines = "\n  - ".join(self.failures[:8])
            more = tr(f"\n  (+{len(self.failures) - 8} more)", f"\n  (그 밖에 {len(self.failures) - 8}개)") \
                if len(self.failures) > 8 else ""
            raise AssertionError(tr(f"{self.title}: {len(self.failures)} problem(s)\n  - {lines}{more}",
                                    f"{self.title}: 문제 {len(self.failures)}개\n  - {lines}{more}"))
        if self.verbose:
            print(tr(f"== {self.title}: all checks passed", f"== {self.title}: 모든 검사 통과"))

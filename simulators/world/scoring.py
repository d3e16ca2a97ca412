"""Scoring what the gateway found against the world's truth: portal passes matched one
to one by tag and time (:func:`score_passes`), locations attributed to EPCs
(:func:`score_locations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tagsweep.simulators.world.portal import TruePass


@dataclass(frozen=True, slots=True)
class PortalScore:
    true_passes: int
    detected: int
    correct: int  # matched a true pass of the same tag, in time, with the right direction
    wrong_direction: int
    missed: int  # true passes with no detected pass
    spurious: int  # detected passes matching no true pass (turn-backs, walk-bys, noise)

    @property
    def direction_accuracy(self) -> float:
        """Correct passes over true passes (a missed pass counts against it)."""
        return self.correct / self.true_passes if self.true_passes else 1.0


def score_passes(
    truth: Sequence[TruePass],
    detected: Sequence[tuple[str, int, str]],
    *,
    tolerance_s: float = 3.0,
) -> PortalScore:
    """Match detected ``(epc, t_us, direction)`` passes to the truth, one to one, by tag
    and time (nearest within ``tolerance_s``)."""
    tol = int(tolerance_s * 1_000_000)
    by_epc: dict[str, list[TruePass]] = {}
    for p in truth:
        by_epc.setdefault(p.epc, []).append(p)
    used: set[tuple[str, int]] = set()
    correct = wrong = spurious = 0
    for epc, t_us, direction in sorted(detected, key=lambda d: d[1]):
        candidates = [
            p
            for p in by_epc.get(epc, ())
            if abs(p.t_us - t_us) <= tol and (epc, p.t_us) not in used
        ]
        if not candidates:
            spurious += 1
            continue
        best = min(candidates, key=lambda p: abs(p.t_us - t_us))
        used.add((epc, best.t_us))
        if best.direction == direction:
            correct += 1
        else:
            wrong += 1
    return PortalScore(
        true_passes=len(truth),
        detected=len(detected),
        correct=correct,
        wrong_direction=wrong,
        missed=len(truth) - len(used),
        spurious=spurious,
    )


def score_locations(truth: dict[str, str], attributed: dict[str, str]) -> tuple[float, int]:
    """(accuracy, count) of attributed EPC → location against the truth, over the EPCs
    attributed (an EPC never read cannot be attributed; report coverage separately)."""
    if not attributed:
        return 0.0, 0
    right = sum(truth.get(epc) == loc for epc, loc in attributed.items())
    return right / len(attributed), len(attributed)

"""What a bench run produces: measures (figures per implementation), verdicts, the machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.tools.bench.stats import Summary, summarize

#: The implementations, in the order of the table's columns.
WAYOUT = "wayout"
PPE = "ProcessPoolExecutor"
LOKY = "loky"
IMPLEMENTATIONS = (WAYOUT, PPE, LOKY)


@dataclass
class Measure:
    """One row of the table: a quantity measured for one or more implementations."""

    key: str
    title: str
    unit: str
    higher_is_better: bool = False
    figures: dict[str, Summary] = field(default_factory=dict)
    #: Why an implementation has no figure (the measure does not exist for it, or it failed).
    missing: dict[str, str] = field(default_factory=dict)
    note: str = ""
    #: Extra numbers worth keeping in the JSON (e.g. pongs seen, states explored).
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, impl: str, values: list[float]) -> None:
        if values:
            self.figures[impl] = summarize(values, higher_is_better=self.higher_is_better)
        else:
            self.missing[impl] = "no samples"

    def p50(self, impl: str = WAYOUT) -> float | None:
        s = self.figures.get(impl)
        return None if s is None else s.p50

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any]) -> Measure:
        return cls(
            key=key,
            title=data["title"],
            unit=data["unit"],
            higher_is_better=data["better"] == "higher",
            figures={impl: Summary(**s) for impl, s in data["figures"].items()},
            missing=dict(data["missing"]),
            note=data["note"],
            extra=dict(data["extra"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "better": "higher" if self.higher_is_better else "lower",
            "figures": {impl: s.as_dict() for impl, s in self.figures.items()},
            "missing": dict(self.missing),
            "note": self.note,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Verdict:
    """One target of issue 8 and whether this run meets it (None: could not be judged)."""

    measure: str
    target: str
    value: str
    passed: bool | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(data["measure"], data["target"], data["value"], data["passed"])

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "target": self.target, "value": self.value,
                "passed": self.passed}


@dataclass
class Report:
    plan: str
    machine: dict[str, Any]
    measures: dict[str, Measure] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    #: Measure groups that raised: group name -> error text.
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, measure: Measure) -> None:
        self.measures[measure.key] = measure

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report read back from ``--json`` output (to print it again)."""
        return cls(
            plan=data["plan"],
            machine=dict(data["machine"]),
            measures={k: Measure.from_dict(k, m) for k, m in data["measures"].items()},
            verdicts=[Verdict.from_dict(v) for v in data["targets"]],
            errors=dict(data["errors"]),
            seconds=float(data["seconds"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "seconds": round(self.seconds, 2),
            "machine": dict(self.machine),
            "measures": {k: m.as_dict() for k, m in self.measures.items()},
            "targets": [v.as_dict() for v in self.verdicts],
            "errors": dict(self.errors),
        }

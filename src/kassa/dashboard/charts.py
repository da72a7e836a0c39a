"""Paid volume per day as bars of an SVG drawn on the server (no script, no charting library)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from kassa.domain.money import Money

WIDTH, HEIGHT, GAP = 600, 160, 2


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # "2026-12-03: 120.50 USD", the bar's <title>


@dataclass(frozen=True, slots=True)
class Chart:
    currency: str
    total: str
    bars: list[Bar]
    first: date
    last: date
    width: int = WIDTH
    height: int = HEIGHT


def volume_charts(volume: dict[str, dict[date, int]], today: date, days: int = 30) -> list[Chart]:
    """One chart per currency (alphabetical: amounts in different currencies do not compare); bars
    scaled to the busiest day."""
    first = today - timedelta(days=days - 1)
    step = WIDTH / days
    charts = []
    for currency, per_day in sorted(volume.items()):
        top = max(per_day.values(), default=0) or 1
        bars = []
        for i in range(days):
            day = first + timedelta(days=i)
            amount = per_day.get(day, 0)
            height = HEIGHT * amount / top  # drawing only: the label shows the exact amount
            bars.append(
                Bar(
                    x=round(i * step, 2),
                    y=round(HEIGHT - height, 2),
                    width=round(step - GAP, 2),
                    height=round(height, 2),
                    label=f"{day.isoformat()}: {Money(amount, currency).display()}",
                )
            )
        total = Money(sum(per_day.values()), currency).display()
        charts.append(Chart(currency, total, bars, first, today))
    return charts

"""What the console shows of numbers: money in the account's currency, compute units and
CPU-hours always with the same number of decimals, and the usage chart, an SVG drawn on
the server (no script, no CDN: the console's CSP allows none).

The chart stacks each day's cost by member: the ``TOP`` members who cost most over the
range get their own series (coloured by who they are, not by rank: the same person has
the same colour on the account's and an organization's chart), the rest are one "Others"
series, so it stays readable at
200 members; at 365 days a bar is a pixel or two wide and the axis labels only a few
dates. Each member's part of a day is their units at the day's price (the one rounding
rule); the cents that rounding leaves between the parts and the day's cost go to the
largest part, so every bar adds up to exactly the cost shown in the table beneath."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from hopsplane.billing.rules import NOBODY_LABEL, cost_parts
from hopsplane.billing.schemas import UsageDay
from hopsplane.money import SYMBOLS as MONEY_SYMBOLS
from hopsplane.money import display
from hopsplane.usage.rules import UNITS_PER_CPU_HOUR

TOP = 8
OTHERS = "Others"
NOBODY = NOBODY_LABEL
SYMBOLS = MONEY_SYMBOLS

WIDTH, HEIGHT = 800, 260
LEFT, RIGHT, TOP_PAD, BOTTOM = 64, 8, 10, 28


def money(amount: Decimal, currency: str) -> str:
    """``$1,234.50``; a currency without a symbol here is written as its code."""
    return display(amount, currency)


def units(value: Decimal) -> str:
    """Compute units, always two decimals (the CSV export carries every digit)."""
    return f"{value:,.2f}"


def cpu_hours(value: Decimal) -> str:
    """Compute units as CPU-hours (10,000 units each), always two decimals."""
    return f"{(value / UNITS_PER_CPU_HOUR):,.2f}"


@dataclass(frozen=True, slots=True)
class Runway:
    per_day: Decimal  # the average daily cost of the window
    days: int | None  # whole days the balance lasts at that rate; None without usage


def runway(balance: Decimal, window_cost: Decimal, window_days: int) -> Runway:
    """How long the balance lasts at the window's average daily cost."""
    per_day = (window_cost / window_days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if window_cost <= 0:
        return Runway(per_day, None)
    return Runway(per_day, max(int(balance * window_days // window_cost), 0))


@dataclass(frozen=True, slots=True)
class Segment:
    series: int
    label: str
    cost: Decimal
    x: float
    y: float
    width: float
    height: float
    colour: str = "c0"


@dataclass(slots=True)
class Bar:
    day: date
    total: Decimal
    segments: list[Segment] = field(default_factory=list)


@dataclass(slots=True)
class Chart:
    series: list[str]  # labels, by series index
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, money) of the value axis
    dates: list[tuple[float, str]]  # (x, label) of the date axis
    total: Decimal
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_bottom: int = HEIGHT - BOTTOM
    colours: list[str] = field(default_factory=list)  # the colour class of each series
    narrow: bool = False


PALETTE = 12
"""Colours a person may have (classes ``c0``..``c11`` of console.css); ``others`` and
``nobody`` have a grey of their own."""
NARROW_WIDTH = 400
"""The phone chart's drawing width: at 390 px its text is drawn at about its own size
(11 px), where the 800-wide chart would shrink it to 5 px."""


def colour_of(user_id: str, order: list[str] | None) -> str:
    """A person's colour: their place among the account's people (owner first, then by
    arrival: :func:`hopsplane.accounts.service.people_order`), so the same person has the
    same colour on the account's chart and on every organization's chart. Without the
    order (a lone chart), a stable hash of the id."""
    if not user_id:
        return "nobody"
    if order is not None and user_id in order:
        return f"c{order.index(user_id) % PALETTE}"
    digest = int.from_bytes(user_id.encode()[:8].ljust(8, b"\0"), "big")
    return f"c{digest % PALETTE}"


def day_parts(day: UsageDay) -> dict[str, Decimal]:
    """A day's cost by user id; the parts add up to the day's cost exactly."""
    return cost_parts(day.user_breakdown, day.unit_price, day.total_cost)


def label_of(user_id: str, people: dict[str, str]) -> str:
    return people.get(user_id, NOBODY)


def build(days: list[UsageDay], people: dict[str, str], currency: str,
          first: date, last: date, *, order: list[str] | None = None,
          narrow: bool = False) -> Chart:
    """The chart of ``days`` between ``first`` and ``last`` (days without usage are gaps).
    ``people``: how each user id is named; ``order``: the account's people, which fixes
    each person's colour; ``narrow``: drawn for a phone (fewer date labels, same numbers)."""
    width = NARROW_WIDTH if narrow else WIDTH
    by_day = {d.date: _merge(day_parts(d), people) for d in days}
    totals: dict[str, Decimal] = {}
    for parts in by_day.values():
        for uid, cost in parts.items():
            totals[uid] = totals.get(uid, Decimal(0)) + cost
    ranked = sorted(totals, key=lambda u: (-totals[u], label_of(u, people), u))
    named = ranked if len(ranked) <= TOP + 1 else ranked[:TOP]
    series = [label_of(u, people) for u in named] + (
        [OTHERS] if len(ranked) > len(named) else [])
    colours = [colour_of(u, order) for u in named] + (
        ["others"] if len(ranked) > len(named) else [])
    index = {uid: i for i, uid in enumerate(named)}

    count = (last - first).days + 1
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP_PAD - BOTTOM
    step = plot_w / count
    gap = step * 0.15 if step >= 4 else 0.0
    top = max((sum(p.values(), Decimal(0)) for p in by_day.values()), default=Decimal(0))
    scale_max = _nice(top)
    bars: list[Bar] = []
    for d in sorted(by_day):
        parts = by_day[d]
        grouped: dict[int, Decimal] = {}
        for uid, cost in parts.items():
            i = index.get(uid, len(named))
            grouped[i] = grouped.get(i, Decimal(0)) + cost
        x = LEFT + (d - first).days * step + gap / 2
        y = float(HEIGHT - BOTTOM)
        bar = Bar(d, sum(parts.values(), Decimal("0.00")))
        for i in sorted(grouped):
            h = float(grouped[i] / scale_max) * plot_h if scale_max else 0.0
            y -= h
            bar.segments.append(Segment(i, series[i], grouped[i], round(x, 2), round(y, 2),
                                        round(max(step - gap, 0.5), 2), round(h, 2),
                                        colours[i]))
        bars.append(bar)
    ticks = [(round(HEIGHT - BOTTOM - plot_h * k / 4, 2), money(scale_max * k / 4, currency))
             for k in range(5)] if scale_max else []
    marks = min(count, 3 if narrow else 6)
    dates = [(round(LEFT + (i * (count - 1) // max(marks - 1, 1)) * step + step / 2, 2),
              (first.toordinal() + i * (count - 1) // max(marks - 1, 1)))
             for i in range(marks)]
    return Chart(series=series, bars=bars, ticks=ticks,
                 dates=[(x, _short_day(date.fromordinal(o), first, last)) for x, o in dates],
                 total=sum((b.total for b in bars), Decimal("0.00")), width=width,
                 colours=colours, narrow=narrow)


def pair(days: list[UsageDay], people: dict[str, str], currency: str, first: date,
         last: date, order: list[str] | None) -> tuple[Chart, Chart]:
    """The chart for a wide screen and the one for a phone (the page shows one)."""
    return (build(days, people, currency, first, last, order=order),
            build(days, people, currency, first, last, order=order, narrow=True))


def _short_day(day: date, first: date, last: date) -> str:
    """An axis date: ``7 Dec``, with the year when the range spans two."""
    text = f"{day.day} {day.strftime('%b')}"
    return f"{text} {day.year}" if first.year != last.year else text


def _merge(parts: dict[str, Decimal], people: dict[str, str]) -> dict[str, Decimal]:
    """Ids of nobody known fold into one part ``""`` (they share the label)."""
    out: dict[str, Decimal] = {}
    for uid, cost in parts.items():
        key = uid if uid in people else ""
        out[key] = out.get(key, Decimal(0)) + cost
    return out


def _nice(top: Decimal) -> Decimal:
    """The axis maximum: the day's highest cost rounded up to 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return Decimal(0)
    exp = top.adjusted()
    for m in (1, 2, 5, 10):
        candidate = Decimal(m).scaleb(exp)
        if candidate >= top:
            return candidate.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) \
                if candidate >= Decimal("0.01") else Decimal("0.01")
    return top

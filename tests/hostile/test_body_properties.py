"""Property tests of hostile bodies: usage, top-up, grant and refund bodies with boundary values,
hostile text and sums, through the API. Each answer is what the documented ranges say (the
day totals, the balance) or a 4xx that changed nothing; never a 500."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from hopsplane.credits import service as credits
from hopsplane.money import MAX_AMOUNT
from hopsplane.usage.rules import (
    MAX_DAY_UNITS,
    MAX_EVENT_CPU_SECONDS,
    MAX_EVENT_UNITS,
    units_from_cpu_seconds,
)
from tests.apps import Api
from tests.factories import post

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

HOSTILE_TEXT = ["1e999999999", "-1e999999999", "NaN", "sNaN", "Infinity", "-0", "", " ",
                "1E+2", "0x1F", "1_0", "\x00", "9" * 80, "٣", "1.", ".5"]


def _boundaries(limit: Decimal, places: int) -> list[str]:
    step = Decimal(1).scaleb(-places)
    return [str(v) for v in (Decimal(0), step, limit - step, limit, limit + step, -step,
                             Decimal(1).scaleb(-places - 1), limit * 10)]


def quantities(limit: Decimal, places: int) -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from(_boundaries(limit, places) + HOSTILE_TEXT),
        st.decimals(min_value=0, max_value=limit * 2, places=places + 1, allow_nan=False)
        .map(str),
        st.integers(min_value=-1, max_value=int(limit) * 2),
        st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    )


def _number(value: object, limit: Decimal, places: int) -> Decimal | None:
    """The documented rule, written out: a decimal string or an integer (never a float or
    a bool), finite, 0 to ``limit``, at most ``places`` decimals (None: refused)."""
    if isinstance(value, bool | float) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and (len(value) > 64 or "\x00" in value):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number > limit:
        return None
    if places == 4 and number != number.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP):
        return None
    return number


def _day_total(api: Api, account: str) -> Decimal:
    with api.db.transaction() as s:
        value = s.execute(text("SELECT compute_units FROM usage_tracking WHERE "
                               "account_owner_id = :a AND date = '2026-11-16'"),
                          {"a": account}).scalar_one_or_none()
    return Decimal(0) if value is None else Decimal(value)


def test_usage_bodies_give_the_day_totals_or_a_422(api: Api) -> None:
    _, admin = api.new_user(admin=True)
    roomy, _ = api.new_user()
    nearly_full, _ = api.new_user()
    assert api.client.post("/v1/usage/events", headers=admin, json={"events": [
        {"id": "seed", "account_id": nearly_full, "timestamp": "2026-11-16T01:00:00Z",
         "compute_units": "1"}]}).status_code == 200
    start = MAX_DAY_UNITS - MAX_EVENT_UNITS * Decimal("2.5")
    with api.db.transaction() as s:
        s.execute(text("UPDATE usage_tracking SET compute_units = :u, user_breakdown = "
                       "jsonb_build_object(CAST(:a AS text), :u) WHERE account_owner_id = :a"),
                  {"u": start, "a": nearly_full})
    model = {roomy: Decimal(0), nearly_full: start}
    serial = iter(range(10**9))

    event = st.fixed_dictionaries({
        "full": st.booleans(),
        "cpu": st.booleans(),
        "units": quantities(MAX_EVENT_UNITS, 4),
        "seconds": quantities(MAX_EVENT_CPU_SECONDS, 0),
    })

    @PROPERTY
    @given(batch=st.lists(event, min_size=1, max_size=4), full=st.booleans())
    def check(batch: list[dict[str, object]], full: bool) -> None:
        account = nearly_full if full else roomy
        events, added, valid = [], Decimal(0), True
        for e in batch:
            body: dict[str, object] = {"id": f"p{next(serial)}", "account_id": account,
                                       "timestamp": "2026-11-16T12:00:00Z"}
            if e["cpu"]:
                body["cpu_seconds"] = e["seconds"]
                seconds = _number(e["seconds"], MAX_EVENT_CPU_SECONDS, 0)
                units = None if seconds is None else units_from_cpu_seconds(seconds)
            else:
                body["compute_units"] = e["units"]
                units = _number(e["units"], MAX_EVENT_UNITS, 4)
            valid = valid and units is not None
            added += units or 0
            events.append(body)
        fits = model[account] + added <= MAX_DAY_UNITS
        r = api.client.post("/v1/usage/events", headers=admin, json={"events": events})
        assert r.status_code < 500, r.text
        if valid and fits:
            assert r.status_code == 200, (events, r.text)
            model[account] += added
        else:
            assert r.status_code == 422 and r.json()["error"] == "Invalid", (events, r.text)
        assert _day_total(api, account) == model[account]

    check()


def money(limit: Decimal) -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from(_boundaries(limit, 2) + HOSTILE_TEXT + ["12.500", "007.10"]),
        st.decimals(min_value=-10, max_value=limit * 2, places=3, allow_nan=False).map(str),
        st.integers(min_value=-5, max_value=int(limit) * 2),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def _amount(value: object) -> Decimal | None:
    """The documented money rule: a plain decimal (no exponent) or an integer, whole cents,
    within what a ledger amount holds."""
    if isinstance(value, bool | float) or not isinstance(value, str | int):
        return None
    if isinstance(value, str):
        plain = value.strip(" \t")
        digits = plain.lstrip("+-")
        if not digits or not all(part.isascii() and part.isdigit()
                                  for part in digits.split(".", 1)):
            return None
        value = plain
    number = Decimal(value)
    if abs(number) > MAX_AMOUNT or number != number.quantize(Decimal("0.01")):
        return None
    return number


def test_grant_and_refund_bodies_give_the_balance_or_a_4xx(api: Api) -> None:
    owner, _ = api.new_user()
    _, admin = api.new_user(admin=True)
    with api.db.transaction() as s:
        purchase = str(post(s, owner, "purchase", "1000.00").entry.id)
    state = {"balance": Decimal("1000.00"), "refundable": Decimal("1000.00")}
    serial = iter(range(10**9))

    @PROPERTY
    @given(amount=money(MAX_AMOUNT), refund=st.booleans())
    def check(amount: object, refund: bool) -> None:
        value = _amount(amount)
        key = f"k{next(serial)}"
        if refund:
            r = api.client.post(f"/v1/admin/accounts/{owner}/refunds", headers=admin, json={
                "purchase_id": purchase, "amount": amount, "reason": "r", "idempotency_key": key})
        else:
            r = api.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin, json={
                "amount": amount, "reason": "r", "idempotency_key": key})
        assert r.status_code < 500, r.text
        if value is None or value <= 0:
            assert r.status_code == 422, (amount, r.text)
        elif refund and value > state["refundable"]:
            assert r.status_code == 409, (amount, r.text)
        else:
            assert r.status_code == 201, (amount, r.text)
            state["balance"] += -value if refund else value
            if refund:
                state["refundable"] -= value
        with api.db.transaction() as s:
            assert credits.balance(s, owner) == state["balance"]

    check()


def test_topup_bodies_give_a_checkout_or_a_422(web: Api) -> None:
    owner, headers = web.new_user()
    low, high = Decimal("5.00"), Decimal("5000.00")  # the web fixture's configured range

    @PROPERTY
    @given(amount=money(high))
    def check(amount: object) -> None:
        value = _amount(amount)
        r = web.client.post("/v1/account/topups", headers=headers, json={"amount": amount})
        assert r.status_code < 500, r.text
        if value is not None and low <= value <= high:
            assert r.status_code == 201 and Decimal(r.json()["amount"]) == value, r.text
        else:
            assert r.status_code == 422 and r.json()["error"] == "Invalid", (amount, r.text)
        with web.db.transaction() as s:
            assert credits.balance(s, owner) == 0  # paid only when Stripe says so

    check()

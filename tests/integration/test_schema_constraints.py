"""The invariants the database holds by itself, whatever the application does."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from hopsplane.crypto import SecretBox
from tests.factories import make_user


def _fails(session: Session, sql: str, match: str, **params: object) -> None:
    with pytest.raises((IntegrityError, DBAPIError), match=match), session.begin_nested():
        session.execute(text(sql), params)


def test_a_member_owner_must_be_an_owner(session: Session) -> None:
    owner = make_user(session)
    member = make_user(session, owner=owner)
    other = make_user(session)
    # no chains: nobody can join a member's account
    _fails(session, "UPDATE users SET account_owner_id = :m WHERE id = :o", "users_owner_is_owner",
           m=member, o=other)
    # an owner with members cannot become a member
    _fails(session, "UPDATE users SET account_owner_id = :o WHERE id = :x", "users_owner_is_owner",
           o=other, x=owner)
    # nobody owns themselves
    _fails(session, "UPDATE users SET account_owner_id = id WHERE id = :o", "users_not_own_owner",
           o=other)


def test_members_never_hold_account_rows(session: Session) -> None:
    owner = make_user(session)
    member = make_user(session, owner=owner)
    _fails(session,
           "INSERT INTO credits_ledger (account_owner_id, seq, amount, balance, type, "
           "idempotency_key) VALUES (:m, 1, 5, 5, 'grant', 'k-member')",
           "credits_ledger_owner_fkey", m=member)
    _fails(session, "INSERT INTO usage_tracking (account_owner_id, date) VALUES (:m, '2026-01-01')",
           "usage_tracking_owner_fkey", m=member)
    # and an owner who holds money cannot silently become a member
    payer = make_user(session)
    session.execute(text(
        "INSERT INTO credits_ledger (account_owner_id, seq, amount, balance, type, idempotency_key)"
        " VALUES (:o, 1, 5, 5, 'grant', :k)"), {"o": payer, "k": uuid.uuid4().hex})
    _fails(session, "UPDATE users SET account_owner_id = :x WHERE id = :o", "credits_ledger_owner",
           x=owner, o=payer)


def test_usage_breakdown_must_sum_to_the_units(session: Session) -> None:
    owner = make_user(session)
    session.execute(text(
        "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
        "VALUES (:o, '2026-01-01', 15000.5, jsonb_build_object(CAST(:o AS text), 10000, 'auth0|m', 5000.5))"),
        {"o": owner})
    _fails(session,
           "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
           "VALUES (:o, '2026-01-02', 100, '{\"a\": 99}')", "usage_tracking_breakdown_sums", o=owner)
    _fails(session,
           "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
           "VALUES (:o, '2026-01-03', 100, '[100]')", "usage_tracking_breakdown_sums", o=owner)
    _fails(session, "UPDATE usage_tracking SET compute_units = 1 WHERE account_owner_id = :o",
           "usage_tracking_breakdown_sums", o=owner)


_BREAKDOWN_CASES = [
    None, '{}', '{"a": 5}', '{"a": "7.25"}', '{"a": null}', '{"a": -3.5}', '{"a": 1e3}',
    '{"a": 1, "b": 2.5}', '{"a": null, "b": 4}', '{"a": "1", "b": "2", "c": 3.0001}',
    '[1, 2]', '[]', '3', '"x"', 'null', 'true',
]


@pytest.mark.parametrize("value", _BREAKDOWN_CASES)
def test_breakdown_total_is_the_sum_of_the_values(session: Session, value: str | None) -> None:
    """Revision 0009 gave breakdown_total an inlinable body; it must answer exactly what the
    plain sum over jsonb_each_text (the 0001 body) answers, NULL for non-objects."""
    got, want = session.execute(text(
        "SELECT hopsplane.breakdown_total(CAST(:v AS jsonb)), "
        "CASE WHEN jsonb_typeof(CAST(:v AS jsonb)) = 'object' THEN (SELECT COALESCE("
        "sum(value::numeric), 0) FROM jsonb_each_text(CAST(:v AS jsonb))) END"),
        {"v": value}).one()
    assert got == want
    if want is not None:
        assert str(got) == str(want)  # same scale too


@pytest.mark.parametrize("value", ['{"a": true}', '{"a": "x"}', '{"a": [1]}',
                                   '{"a": 1, "b": {"c": 1}}'])
def test_breakdown_total_refuses_values_that_are_not_numbers(session: Session,
                                                             value: str) -> None:
    _fails(session, "SELECT hopsplane.breakdown_total(CAST(:v AS jsonb))",
           "invalid input syntax for type numeric", v=value)


def test_usage_volume_beyond_the_plans_overflow_and_cost_rounding(session: Session) -> None:
    owner = make_user(session)
    # 10,000 CPU-hours in a day = 100,000,000 units: the plan's DECIMAL(10,4) stops at 999,999.
    row = session.execute(text(
        "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
        "VALUES (:o, '2026-01-01', 100000000.0050, jsonb_build_object(CAST(:o AS text), 100000000.0050)) "
        "RETURNING total_cost"), {"o": owner}).scalar_one()
    assert row == Decimal("10000.00")
    cost = session.execute(text(
        "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
        "VALUES (:o, '2026-01-02', 12350, jsonb_build_object(CAST(:o AS text), 12350)) RETURNING total_cost"),
        {"o": owner}).scalar_one()
    assert cost == Decimal("1.24")  # 1.235 rounds half-up


def test_cluster_secrets_must_be_ciphertext(session: Session) -> None:
    _fails(session,
           "INSERT INTO hopsworks_clusters (name, api_url, api_key) "
           "VALUES ('c', 'https://c.example.com', 'plain-api-key')",
           "hopsworks_clusters_api_key_encrypted")
    token = SecretBox([SecretBox.generate_key()]).encrypt("k")
    _fails(session,
           "INSERT INTO hopsworks_clusters (name, api_url, api_key, kubeconfig) "
           "VALUES ('c', 'https://c.example.com', :t, 'apiVersion: v1')",
           "hopsworks_clusters_kubeconfig_encrypted", t=token)
    session.execute(text(
        "INSERT INTO hopsworks_clusters (name, api_url, api_key, kubeconfig) "
        "VALUES ('c', 'https://c.example.com', :t, :t)"), {"t": token})


def test_invites_store_hashes_and_one_live_invite_per_email(session: Session) -> None:
    owner = make_user(session)
    insert = ("INSERT INTO team_invites (account_owner_id, email, token_hash, expires_at) "
              "VALUES (:o, :e, :h, now() + interval '7 days')")
    _fails(session, insert, "team_invites_token_is_sha256", o=owner, e="a@x.io", h="raw-token")
    session.execute(text(insert), {"o": owner, "e": "A@x.io", "h": "a" * 64})
    _fails(session, insert, "team_invites_one_live_per_email", o=owner, e="a@X.io", h="b" * 64)
    session.execute(text("UPDATE team_invites SET revoked_at = now() WHERE account_owner_id = :o"),
                    {"o": owner})
    session.execute(text(insert), {"o": owner, "e": "a@x.io", "h": "c" * 64})


def test_deleting_users_follows_the_defined_behaviour(session: Session) -> None:
    owner = make_user(session)
    session.execute(text(
        "INSERT INTO team_invites (account_owner_id, email, token_hash, expires_at) "
        "VALUES (:o, 'i@x.io', :h, now() + interval '1 day')"), {"o": owner, "h": "d" * 64})
    session.execute(text("DELETE FROM users WHERE id = :o"), {"o": owner})  # invites cascade
    assert session.execute(text("SELECT count(*) FROM team_invites WHERE account_owner_id = :o"),
                           {"o": owner}).scalar_one() == 0
    payer = make_user(session)
    session.execute(text(
        "INSERT INTO credits_ledger (account_owner_id, seq, amount, balance, type, idempotency_key)"
        " VALUES (:o, 1, 5, 5, 'grant', :k)"), {"o": payer, "k": uuid.uuid4().hex})
    _fails(session, "DELETE FROM users WHERE id = :o", "credits_ledger_owner_fkey", o=payer)

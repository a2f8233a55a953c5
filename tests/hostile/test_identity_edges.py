"""Identity edges: invite acceptance trusts the stored address, emails are one
normalised form and real addresses, and revision 0013 brings existing rows to that form."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from hopsplane.accounts.rules import normalise_email
from hopsplane.db import migrate
from hopsplane.errors import Invalid
from tests.apps import Api
from tests.pg import PgServer

ROMAN_M = "\u216f"  # ROMAN NUMERAL ONE THOUSAND: NFKC makes it "M"


def test_a_token_claiming_the_invited_address_does_not_make_another_user_a_member(
    api: Api,
) -> None:
    _, oh = api.new_user()
    assert api.client.post("/v1/team/invites", headers=oh,
                           json={"email": "invited@example.com"}).status_code == 201
    token = api.last_token()
    x = "auth0|x-user"
    assert api.client.get("/v1/me", headers=api.auth(x, "x@example.com")).status_code == 200
    # the same subject, now with a token whose (verified) claim is the invited address
    claims_invited = api.auth(x, "invited@example.com")
    r = api.client.post("/v1/invites/accept", headers=claims_invited, json={"token": token})
    assert r.status_code == 403, r.text
    me = api.client.get("/v1/me", headers=claims_invited).json()
    assert me["role"] == "owner" and me["email"] == "x@example.com"
    assert me["email_verified"] is False  # the claim vouches for another address


def test_addresses_are_one_form_but_distinct_mailboxes_stay_distinct(api: Api) -> None:
    first, _ = api.new_user(email="m2@example.com")
    # case and an IDNA-equivalent domain are one address (Auth0 stores it lower-cased)
    r = api.client.get("/v1/me", headers=api.auth("auth0|case", "M2@EXAMPLE.com"))
    assert r.status_code == 403 and "already belongs" in r.json()["detail"]
    r = api.client.get("/v1/me", headers=api.auth("auth0|wide-domain",
                                                   "m2@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com"))
    assert r.status_code == 403 and "already belongs" in r.json()["detail"]
    # a look-alike by compatibility (U+216F) is another mailbox: another user
    r = api.client.get("/v1/me", headers=api.auth("auth0|lookalike", f"{ROMAN_M}2@Example.COM"))
    assert r.status_code == 200 and r.json()["email"] == "\u217f2@example.com"
    owner, oh = api.new_user()
    made = api.client.post("/v1/team/invites", headers=oh, json={"email": f" {ROMAN_M}2@EXAMPLE.com"})
    assert made.status_code == 201 and made.json()["email"] == "\u217f2@example.com"
    refused = api.client.post("/v1/invites/accept", headers=api.auth(first, "m2@example.com"),
                              json={"token": api.last_token()})
    assert refused.status_code == 403, refused.text
    # an invite in another case is accepted by the address's owner
    api.client.post("/v1/team/invites", headers=oh, json={"email": "M2@Example.COM"})
    accepted = api.client.post("/v1/invites/accept", headers=api.auth(first, "M2@example.com"),
                               json={"token": api.last_token()})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["account_owner_id"] == owner


@pytest.mark.parametrize("theirs,other", [
    ("x@stra\u00dfe.de", "x@strasse.de"),  # IDNA2008: another domain
    ("stra\u00dfe@x.de", "strasse@x.de"),  # no case folding of sharp s
    ("\u03c3\u03b1\u03c2@x.gr", "\u03c3\u03b1\u03c3@x.gr"),  # final sigma is not sigma
    ("\uff41b@x.io", "ab@x.io"),  # fullwidth letters are not ASCII
])
def test_an_address_a_mail_server_delivers_elsewhere_is_another_identity(
    api: Api, theirs: str, other: str
) -> None:
    """x@straße.de must neither sign in as x@strasse.de nor accept that address's invite."""
    assert normalise_email(theirs) != normalise_email(other)
    victim, _ = api.new_user(email=other)
    _, oh = api.new_user()
    assert api.client.post("/v1/team/invites", headers=oh, json={"email": other}
                           ).status_code == 201
    token = api.last_token()
    intruder = f"auth0|intruder-{uuid.uuid4().hex[:12]}"
    r = api.client.get("/v1/me", headers=api.auth(intruder, theirs))
    assert r.status_code == 200 and r.json()["email"] == normalise_email(theirs), r.text
    r = api.client.post("/v1/invites/accept", headers=api.auth(intruder, theirs),
                        json={"token": token})
    assert r.status_code == 403, r.text
    r = api.client.post("/v1/invites/accept", headers=api.auth(victim, other),
                        json={"token": token})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("bad", ['"><script>alert(1)</script>@x.io', "a@b", "x@localhost",
                                 "a\x00@x.io", "a b@x.io", "@x.io"])
def test_markup_and_non_addresses_are_never_stored(api: Api, bad: str) -> None:
    _, oh = api.new_user()
    r = api.client.post("/v1/team/invites", headers=oh, json={"email": bad})
    assert r.status_code == 422 and r.json()["error"] == "Invalid", r.text
    assert api.client.get("/v1/team/invites", headers=oh).json()["items"] == []
    signup = api.client.get("/v1/me", headers=api.auth("auth0|bad-email", bad))
    assert signup.status_code == 401
    with api.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM users WHERE id = 'auth0|bad-email'")
                         ).scalar_one() == 0


def test_normalising_is_idempotent() -> None:
    for raw in (f"{ROMAN_M}2@x.io", "Stra\u00dfe@X.io", " A@B.io ", "\uff41@x.io"):
        once = normalise_email(raw)
        assert normalise_email(once) == once
    with pytest.raises(Invalid):
        normalise_email("x" * 250 + "@x.io")


def _at_0010_with(pg: PgServer, sql: str) -> str:
    url = pg.empty_database()
    migrate.upgrade(url, "0010")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return url


def test_0013_normalises_users_and_invites_and_revokes_duplicates(pg: PgServer) -> None:
    url = _at_0010_with(pg, f"""
        INSERT INTO users (id, email) VALUES ('o', 'Owner@Example.com'),
                                             ('m', '{ROMAN_M}ia@example.com');
        INSERT INTO team_invites (account_owner_id, email, token_hash, expires_at, created_at)
        VALUES ('o', 'Kim@example.com', repeat('a', 64), now() + interval '1 day',
                now() - interval '1 hour'),
               ('o', '\uff2bim@EXAMPLE.com', repeat('b', 64), now() + interval '1 day', now()),
               ('o', '"><b>@x.io', repeat('d', 64), now() + interval '1 day', now());
        INSERT INTO hopsplane.usage_events (event_id, source, account_id, occurred_at,
                                            compute_units, status, problem)
        VALUES ('job-1', 'api', 'ghost', now(), 1, 'unmatched', 'unknown account ghost');
    """)
    migrate.upgrade(url)
    migrate.check(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        users = dict(conn.execute(text("SELECT id, email FROM users")).all())
        invites = conn.execute(text(
            "SELECT token_hash, email, revoked_at IS NULL FROM team_invites ORDER BY token_hash"
        )).all()
        # the existing event keeps its id, and the same id is now free for another source
        conn.execute(text(
            "INSERT INTO hopsplane.usage_events (event_id, source, account_id, occurred_at, "
            "compute_units, status, problem) VALUES ('job-1', 'agent:x', 'ghost', now(), 1, "
            "'unmatched', 'unknown')"))
    engine.dispose()
    # 0013 applied the rule of its time (NFKC, case folding); 0022 cannot unfold it
    assert users == {"o": "owner@example.com", "m": "mia@example.com"}
    live = [(h[0], e) for h, e, is_live in invites if is_live]
    assert live == [("b", "kim@example.com")]  # the newer of the two look-alikes is kept
    assert sum(1 for *_, is_live in invites if not is_live) == 2  # the older, and markup
    with pytest.raises(RuntimeError, match="refusing to downgrade below 0013"):
        migrate.downgrade(url, "0010")


def test_0013_refuses_users_that_become_one_address(pg: PgServer) -> None:
    url = _at_0010_with(pg, "INSERT INTO users (id, email) VALUES "
                            "('u1', 'Ann@example.com'), ('u2', 'ann@example.com')")
    with pytest.raises(RuntimeError, match="u1 and u2"):
        migrate.upgrade(url)
    assert migrate.current(url) == "0010"


def _at_0020_with(pg: PgServer, sql: str) -> str:
    url = pg.empty_database()
    migrate.upgrade(url, "0020")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return url


def test_0022_refuses_and_names_users_that_are_one_address_under_the_rule(
    pg: PgServer,
) -> None:
    url = _at_0020_with(pg, "INSERT INTO users (id, email) VALUES "
                            "('u1', 'Ann@example.com'), ('u2', 'ann@EXAMPLE.com'), "
                            "('u3', 'stra\u00dfe@x.de'), ('u4', 'strasse@x.de')")
    with pytest.raises(RuntimeError, match=r"1 group\(s\).*u1 \(Ann@example.com\) and u2"):
        migrate.upgrade(url)
    assert migrate.current(url) == "0020"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET email = 'ann2@example.com' WHERE id = 'u2'"))
    engine.dispose()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        users = dict(conn.execute(text("SELECT id, email FROM users")).all())
    engine.dispose()
    assert users == {"u1": "ann@example.com", "u2": "ann2@example.com",
                     "u3": "stra\u00dfe@x.de", "u4": "strasse@x.de"}  # ß is not ss

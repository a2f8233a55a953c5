"""Odd legacy values the move must still handle deterministically."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from hopsplane.crypto import SecretBox
from hopsplane.legacy.transform import STATUS_MAP
from tests.factories import make_legacy
from tests.legacy.helpers import execute, run_migrate
from tests.pg import PgServer


def test_odd_values_are_mapped_and_kept(pg: PgServer, box: SecretBox, tmp_path: Path) -> None:
    url = make_legacy(pg, users=60)
    already = box.encrypt("already-sealed")
    execute(
        url,
        "UPDATE hopsworks_clusters SET status = NULL, kubeconfig = NULL, "
        "metadata = '[1, 2]'::jsonb WHERE name = 'hopsworks-1'",
        f"UPDATE hopsworks_clusters SET status = 'Decommissioned', api_key = '{already}' "
        "WHERE name = 'hopsworks-2'",
        "UPDATE users SET metadata = '{\"legacy\": \"mine\", \"x\": 1}'::jsonb, created_at = NULL, "
        "updated_at = NULL WHERE id = 'auth0|0000000004'",
        "UPDATE users SET metadata = NULL WHERE id = 'auth0|0000000006'",
        "UPDATE user_credits SET total_purchased = NULL, free_credits = 0, total_used = 0 "
        "WHERE user_id = 'auth0|0000000010'",
        "UPDATE user_hopsworks_assignments SET assigned_at = NULL, created_at = NULL "
        "WHERE user_id = 'auth0|0000000011'",
        "UPDATE usage_daily SET cpu_hours = NULL WHERE user_id = 'auth0|0000000012' "
        "AND date = '2025-01-03'",
    )
    run_migrate(url, tmp_path, box)
    engine = create_engine(url)
    with engine.connect() as conn:
        clusters = {r.name: r for r in conn.execute(text("SELECT * FROM hopsworks_clusters"))}
        assert clusters["hopsworks-1"].status == "disabled"
        assert clusters["hopsworks-1"].kubeconfig is None
        assert clusters["hopsworks-1"].metadata == {"legacy": {"metadata": [1, 2],
                                                               "current_users": 30}}
        assert clusters["hopsworks-2"].status == STATUS_MAP["decommissioned"] == "disabled"
        assert clusters["hopsworks-2"].api_key == already
        users = {r.id: r for r in conn.execute(text("SELECT * FROM users"))}
        u4 = users["auth0|0000000004"]
        # neither created_at nor updated_at: the profile's created_at (user 4 has a profile)
        assert u4.created_at == datetime(2024, 1, 2, tzinfo=UTC)
        assert u4.metadata["legacy"]["metadata"] == {"legacy": "mine", "x": 1}
        assert u4.metadata["legacy"]["created_at_missing"] is True
        assert "legacy" in users["auth0|0000000006"].metadata
        assert conn.execute(text(
            "SELECT count(*) FROM credits_ledger WHERE account_owner_id = 'auth0|0000000010'"
        )).scalar() == 0
        # no assigned_at and no created_at on the assignment: the user's created_at
        assigned = conn.execute(text(
            "SELECT assigned_at FROM account_clusters WHERE account_owner_id = 'auth0|0000000011'"
        )).scalar()
        assert assigned == users["auth0|0000000011"].created_at
        units = conn.execute(text(
            "SELECT compute_units FROM usage_tracking WHERE account_owner_id = 'auth0|0000000012' "
            "AND date = '2025-01-03'")).scalar()
        assert units == 0
    engine.dispose()

"""Usage metering: a cheaper fold, so ingestion keeps up with its rate.

- hopsplane.jsonb_add_number(obj, key, delta): ``obj`` with ``delta`` added to the number
  under ``key`` (a missing object or key counts as 0; a key whose sum is 0 is removed). A
  single SQL expression, declared STABLE (``jsonb_build_object`` is), so the planner
  inlines it into the fold's UPDATE: no function call per row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE FUNCTION hopsplane.jsonb_add_number(obj jsonb, key text, delta numeric) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN COALESCE((obj ->> key)::numeric, 0) + COALESCE(delta, 0) = 0
              THEN COALESCE(obj, '{}') - key
              ELSE COALESCE(obj, '{}') || jsonb_build_object(
                     key, COALESCE((obj ->> key)::numeric, 0) + COALESCE(delta, 0))
         END
$$;
COMMENT ON FUNCTION hopsplane.jsonb_add_number(jsonb, text, numeric) IS
  'obj with delta added to the number under key (absent = 0; a zero sum removes the key).';
"""

DOWNGRADE = """
DROP FUNCTION hopsplane.jsonb_add_number(jsonb, text, numeric);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

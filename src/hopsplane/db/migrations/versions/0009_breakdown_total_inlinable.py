"""breakdown_total without a subquery for the common one-key breakdown (same results).

usage_tracking_breakdown_sums calls hopsplane.breakdown_total(user_breakdown) on every
written row. The 0001 body sums ``jsonb_each_text`` in a subquery, which PostgreSQL cannot
inline: each call runs the SQL-function machinery (about 4 us a row; 40 s for the 10
million rows of a large legacy cleanup). Almost every breakdown holds one key (the owner).
The new body has no subquery, so it is inlined into the CHECK: objects with one key read
that key's value directly (``jsonb_path_query_first(b, '$.*') #>> '{}'`` is the text that
``jsonb_each_text`` gives), an empty object is 0, and only objects with several keys call
the old sum (now ``breakdown_total_many``). NULL and non-objects stay NULL; a value that
is not a number still fails the cast as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE FUNCTION hopsplane.breakdown_total_many(b jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT COALESCE(sum(value::numeric), 0) FROM jsonb_each_text(b)
$$;
COMMENT ON FUNCTION hopsplane.breakdown_total_many(jsonb) IS
  'Sum of the numeric values of a JSON object (the general case of breakdown_total).';

CREATE OR REPLACE FUNCTION hopsplane.breakdown_total(b jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN b IS NULL OR jsonb_typeof(b) <> 'object' THEN NULL
              WHEN b = '{}'::jsonb THEN 0
              WHEN jsonb_array_length(jsonb_path_query_array(b, '$.*')) = 1
                THEN COALESCE((jsonb_path_query_first(b, '$.*') #>> '{}')::numeric, 0)
              ELSE hopsplane.breakdown_total_many(b)
         END
$$;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION hopsplane.breakdown_total(b jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(b) = 'object'
              THEN (SELECT COALESCE(sum(value::numeric), 0) FROM jsonb_each_text(b))
         END
$$;
DROP FUNCTION hopsplane.breakdown_total_many(jsonb);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

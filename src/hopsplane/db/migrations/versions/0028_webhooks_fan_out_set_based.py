"""The publish point fans an event out to its webhook endpoints in one set-based
statement instead of a loop of one statement per delivery.

Revision 0027's ``hopsplane.publish_event`` inserted the deliveries with ``INSERT ...
RETURNING`` and looped over them, calling ``hopsplane.enqueue_job`` once per delivery:
one more statement (and one firing of the ``jobs_notify`` statement trigger) per
delivery, in every transaction that causes events. A billing run that crossed a
threshold on 20,000 accounts with one endpoint each took 1.9x the time of the same run
without endpoints (benchmarks/webhooks_billing.py; 1.5x with this revision). Now the
deliveries and their ``webhooks.deliver`` jobs are one data-modifying CTE, run only when
the account has an enabled endpoint subscribed to the type (so an account without
endpoints costs one indexed lookup, and no empty INSERT wakes the workers). The rows
written are the same: one delivery per (endpoint, event), its job keyed
``webhook:<delivery id>`` with 100 attempts, the notice job as before.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE OR REPLACE FUNCTION hopsplane.publish_event(p_kind text, p_account text, p_key text,
                                                   p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  notice bigint;
  v_type text := CASE WHEN p_kind = 'auto_topup' THEN 'auto_topup.' || (p_payload ->> 'event')
                          ELSE p_kind END;
BEGIN
  notice := hopsplane.enqueue_job(
    'notices.send',
    jsonb_build_object('kind', p_kind, 'account', p_account, 'key', p_key,
                       'payload', p_payload),
    'notice:' || p_key);
  IF EXISTS (SELECT 1 FROM hopsplane.webhook_endpoints e
             WHERE e.account_owner_id = p_account AND e.enabled
               AND v_type = ANY (e.event_types)) THEN
    WITH delivery AS (
      INSERT INTO hopsplane.webhook_deliveries (endpoint_id, account_owner_id, message_id,
                                                event_type, payload)
      SELECT e.id, p_account,
             'msg_' || substr(encode(sha256(convert_to(p_key, 'UTF8')), 'hex'), 1, 32),
             v_type,
             jsonb_build_object(
               'type', v_type,
               'timestamp', to_char(now() AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', p_payload || jsonb_build_object('account_id', p_account))
      FROM hopsplane.webhook_endpoints e
      WHERE e.account_owner_id = p_account AND e.enabled AND v_type = ANY (e.event_types)
      ORDER BY e.id
      ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING
      RETURNING id
    )
    INSERT INTO hopsplane.jobs (task, args, idempotency_key, max_attempts)
    SELECT 'webhooks.deliver', jsonb_build_object('delivery', delivery.id),
           'webhook:' || delivery.id, 100
    FROM delivery
    ON CONFLICT (idempotency_key) DO NOTHING;
  END IF;
  RETURN notice;
END
$$;
"""

# revision 0027's function, as it was
DOWNGRADE = """
CREATE OR REPLACE FUNCTION hopsplane.publish_event(p_kind text, p_account text, p_key text,
                                                   p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  notice bigint;
  v_type text := CASE WHEN p_kind = 'auto_topup' THEN 'auto_topup.' || (p_payload ->> 'event')
                          ELSE p_kind END;
  v_message text := 'msg_' || substr(encode(sha256(convert_to(p_key, 'UTF8')), 'hex'), 1, 32);
  delivery record;
BEGIN
  notice := hopsplane.enqueue_job(
    'notices.send',
    jsonb_build_object('kind', p_kind, 'account', p_account, 'key', p_key,
                       'payload', p_payload),
    'notice:' || p_key);
  FOR delivery IN
    INSERT INTO hopsplane.webhook_deliveries (endpoint_id, account_owner_id, message_id,
                                              event_type, payload)
    SELECT e.id, p_account, v_message, v_type,
           jsonb_build_object(
             'type', v_type,
             'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'data', p_payload || jsonb_build_object('account_id', p_account))
    FROM hopsplane.webhook_endpoints e
    WHERE e.account_owner_id = p_account AND e.enabled AND v_type = ANY (e.event_types)
    ORDER BY e.id
    ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING
    RETURNING id
  LOOP
    PERFORM hopsplane.enqueue_job('webhooks.deliver',
                                  jsonb_build_object('delivery', delivery.id),
                                  'webhook:' || delivery.id, 100);
  END LOOP;
  RETURN notice;
END
$$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

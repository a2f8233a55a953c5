"""Outbound webhooks: endpoints an account registers, and one delivery per event and
endpoint, enqueued by the publish point in the transaction that caused the event.

- ``hopsplane.webhook_endpoints``: per account (owner's id), the URL, the event types it
  wants, a description, the signing secret (Fernet ciphertext of a ``whsec_`` secret, never
  stored in clear) and, during a rotation, the previous secret and until when it still
  signs. ``enabled`` false once it kept failing for the retry window (or by its owner).
- ``hopsplane.webhook_deliveries``: one row per (endpoint, event): the message id
  (``webhook-id``, the same for every attempt and replay of the event, so a consumer
  deduplicates by it), the type, the body sent, the outcome of the last attempt (status
  code and at most 256 characters of the response body).
- ``hopsplane.enqueue_job(task, args, key, max_attempts)``: the queue's door with an
  attempt budget (a delivery retries for about three days).
- ``hopsplane.publish_event`` now also inserts, for every enabled endpoint of the account
  subscribed to the event's type, its delivery and its ``webhooks.deliver`` job, in the
  caller's transaction; the notice job is as in revision 0025.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.webhook_endpoints (
  id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_owner_id    TEXT NOT NULL
    CONSTRAINT webhook_endpoints_account_owner_id_fkey
    REFERENCES public.users (id) ON DELETE CASCADE,
  url                 TEXT NOT NULL CONSTRAINT webhook_endpoints_url_length
                        CHECK (length(url) BETWEEN 1 AND 2048),
  description         TEXT NOT NULL DEFAULT '' CONSTRAINT webhook_endpoints_description_length
                        CHECK (length(description) <= 200),
  event_types         TEXT[] NOT NULL CONSTRAINT webhook_endpoints_some_types
                        CHECK (cardinality(event_types) > 0),
  secret              TEXT NOT NULL,
  previous_secret     TEXT,
  previous_until      TIMESTAMPTZ,
  enabled             BOOLEAN NOT NULL DEFAULT true,
  disabled_reason     TEXT,
  created_by          TEXT,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_success_at     TIMESTAMPTZ,
  CONSTRAINT webhook_endpoints_previous_pair
    CHECK ((previous_secret IS NULL) = (previous_until IS NULL))
);
CREATE INDEX webhook_endpoints_account_idx
  ON hopsplane.webhook_endpoints (account_owner_id) WHERE enabled;

CREATE TABLE hopsplane.webhook_deliveries (
  id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  endpoint_id       UUID NOT NULL
    CONSTRAINT webhook_deliveries_endpoint_id_fkey
    REFERENCES hopsplane.webhook_endpoints (id) ON DELETE CASCADE,
  account_owner_id  TEXT NOT NULL,
  message_id        TEXT NOT NULL,
  event_type        TEXT NOT NULL,
  payload           JSONB NOT NULL,
  status            TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT webhook_deliveries_status_known
    CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  response_status   INTEGER,
  response_prefix   TEXT CONSTRAINT webhook_deliveries_prefix_short
                      CHECK (length(response_prefix) <= 256),
  error             TEXT,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_attempt_at   TIMESTAMPTZ,
  CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_recent_idx
  ON hopsplane.webhook_deliveries (endpoint_id, created_at DESC);

CREATE FUNCTION hopsplane.enqueue_job(p_task text, p_args jsonb, p_key text,
                                      p_max_attempts integer)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  INSERT INTO hopsplane.jobs (task, args, idempotency_key, max_attempts)
  VALUES (p_task, p_args, p_key, p_max_attempts)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id
$$;

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

DOWNGRADE = """
CREATE OR REPLACE FUNCTION hopsplane.publish_event(p_kind text, p_account text, p_key text,
                                                   p_payload jsonb)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT hopsplane.enqueue_job(
    'notices.send',
    jsonb_build_object('kind', p_kind, 'account', p_account, 'key', p_key,
                       'payload', p_payload),
    'notice:' || p_key)
$$;
DROP FUNCTION hopsplane.enqueue_job(text, jsonb, text, integer);
DROP TABLE hopsplane.webhook_deliveries;
DROP TABLE hopsplane.webhook_endpoints;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""One notification path: every notice is a queue job enqueued in the transaction that
caused it; the two outbox tables are gone.

- ``hopsplane.enqueue_job(task, args, key)``: the queue's door for set-based statements
  (a standing update over a batch of accounts, the expiring-credit notices of every grant)
  that must enqueue in their own statement, without a round trip per job. It inserts what
  ``worker.repository.insert`` inserts (no lock key, due now) and returns the job's id, or
  NULL when the key was taken (a repeat).
- ``hopsplane.publish_event(kind, account, key, payload)``: the one publish point of an
  account event (``hopsplane.notices.publish`` calls it, and so do the ledger's set-based
  statements). Today it enqueues the event's notice job (task ``notices.send``, job key
  ``notice:<event key>``), so an event is queued once whatever the number of transactions
  that cause it. Outbound webhooks will enqueue their deliveries here too.
- ``member_budgets.noticed_month / noticed_budget / noticed_percent``: the highest budget
  threshold already announced this month at this amount (state that decides when a notice
  is due, as ``account_standing.notice_threshold`` does for balances). It replaces the
  unique key of ``budget_notices``: finished jobs are pruned, state is not.
- Pending rows move: every balance event and budget notice not dispatched yet becomes a
  queued ``notices.send`` job (a suspension or resumption nobody announced also gets its
  ``credits.announce_standing`` job); queued auto top-up notices of the former task
  ``payments.auto_topup_notice`` become ``notices.send`` jobs. Then
  ``hopsplane.balance_events`` and ``hopsplane.budget_notices`` are dropped.

Downgrade recreates both tables EMPTY (with their last shape) and drops the functions and
columns; queued ``notices.send`` and ``credits.announce_standing`` jobs are left in the
queue, where the older code fails them as an unknown task (``hopsplane worker jobs`` shows
them): what was pending is not moved back.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE FUNCTION hopsplane.enqueue_job(p_task text, p_args jsonb, p_key text)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  INSERT INTO hopsplane.jobs (task, args, idempotency_key)
  VALUES (p_task, p_args, p_key)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id
$$;

CREATE FUNCTION hopsplane.publish_event(p_kind text, p_account text, p_key text,
                                        p_payload jsonb)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT hopsplane.enqueue_job(
    'notices.send',
    jsonb_build_object('kind', p_kind, 'account', p_account, 'key', p_key,
                       'payload', p_payload),
    'notice:' || p_key)
$$;

ALTER TABLE hopsplane.member_budgets
  ADD COLUMN noticed_month   DATE,
  ADD COLUMN noticed_budget  NUMERIC(14,2),
  ADD COLUMN noticed_percent SMALLINT;

UPDATE hopsplane.member_budgets b
SET noticed_month = n.month, noticed_budget = n.budget, noticed_percent = n.percent
FROM (SELECT DISTINCT ON (member_id) member_id, month, budget, percent
      FROM hopsplane.budget_notices ORDER BY member_id, month DESC, percent DESC) AS n
WHERE n.member_id = b.member_id AND n.budget = b.monthly_budget;

SELECT hopsplane.publish_event(
  e.kind, e.account_owner_id, e.kind || ':' || e.account_owner_id || ':' || e.ledger_seq,
  jsonb_strip_nulls(jsonb_build_object(
    'threshold', CAST(e.threshold AS text), 'balance', CAST(e.balance AS text),
    'ledger_seq', e.ledger_seq, 'amount', CAST(e.amount AS text),
    'expires_at', e.expires_at)))
FROM hopsplane.balance_events e WHERE e.dispatched_at IS NULL ORDER BY e.id;

SELECT hopsplane.enqueue_job(
  'credits.announce_standing',
  jsonb_build_object('account', e.account_owner_id, 'kind', e.kind,
                     'ledger_seq', e.ledger_seq),
  'standing:' || e.kind || ':' || e.account_owner_id || ':' || e.ledger_seq)
FROM hopsplane.balance_events e
WHERE e.dispatched_at IS NULL AND e.kind IN ('suspended', 'resumed') ORDER BY e.id;

SELECT hopsplane.publish_event(
  'budget_reached', n.account_owner_id,
  'budget_reached:' || n.member_id || ':' || n.month || ':' || n.percent || ':'
    || n.budget || ':' || n.recipient,
  jsonb_build_object('member_id', n.member_id, 'month', n.month, 'percent', n.percent,
                     'budget', CAST(n.budget AS text), 'spend', CAST(n.spend AS text),
                     'enforce', COALESCE(b.enforce, false),
                     'recipients', jsonb_build_array(n.recipient)))
FROM hopsplane.budget_notices n
LEFT JOIN hopsplane.member_budgets b ON b.member_id = n.member_id
WHERE n.dispatched_at IS NULL ORDER BY n.id;

UPDATE hopsplane.jobs j
SET task = 'notices.send',
    args = jsonb_build_object(
      'kind', 'auto_topup', 'account', j.args ->> 'account',
      'key', 'auto_topup:' || (j.args ->> 'attempt_id') || ':' || (j.args ->> 'kind') || ':'
             || j.id,
      'payload', jsonb_build_object(
        'event', j.args ->> 'kind', 'attempt_id', j.args ->> 'attempt_id',
        'amount', CAST(a.amount AS text), 'detail', j.args -> 'detail'))
FROM hopsplane.auto_topup_attempts a
WHERE j.task = 'payments.auto_topup_notice' AND j.status IN ('queued', 'running')
  AND a.id = CAST(j.args ->> 'attempt_id' AS uuid);

DROP TABLE hopsplane.balance_events;
DROP TABLE hopsplane.budget_notices;
"""

DOWNGRADE = """
CREATE TABLE hopsplane.balance_events (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_owner_id  TEXT NOT NULL,
  kind              TEXT NOT NULL,
  threshold         NUMERIC(16,2),
  balance           NUMERIC(16,2) NOT NULL,
  ledger_seq        BIGINT NOT NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  dispatched_at     TIMESTAMPTZ,
  amount            NUMERIC(16,2),
  expires_at        TIMESTAMPTZ,
  CONSTRAINT balance_events_once_per_entry UNIQUE (account_owner_id, ledger_seq, kind),
  CONSTRAINT balance_events_kind_known
    CHECK (kind IN ('low_balance', 'suspended', 'resumed', 'credits_expiring', 'recovered')),
  CONSTRAINT balance_events_threshold_for_notices
    CHECK ((kind IN ('low_balance', 'recovered')) = (threshold IS NOT NULL)),
  CONSTRAINT balance_events_expiry_for_expiring
    CHECK ((kind = 'credits_expiring') = (expires_at IS NOT NULL AND amount IS NOT NULL))
);
CREATE INDEX balance_events_pending_idx ON hopsplane.balance_events (id)
  WHERE dispatched_at IS NULL;

CREATE TABLE hopsplane.budget_notices (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  member_id        TEXT NOT NULL,
  account_owner_id TEXT NOT NULL,
  month            DATE NOT NULL,
  percent          SMALLINT NOT NULL,
  budget           NUMERIC(14,2) NOT NULL,
  spend            NUMERIC(16,2) NOT NULL,
  recipient        TEXT NOT NULL,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  dispatched_at    TIMESTAMPTZ,
  CONSTRAINT budget_notices_once UNIQUE (member_id, month, percent, budget, recipient),
  CONSTRAINT budget_notices_percent_known CHECK (percent IN (80, 100)),
  CONSTRAINT budget_notices_recipient_known CHECK (recipient IN ('owner', 'member'))
);
CREATE INDEX budget_notices_pending_idx ON hopsplane.budget_notices (id)
  WHERE dispatched_at IS NULL;

ALTER TABLE hopsplane.member_budgets
  DROP COLUMN noticed_month,
  DROP COLUMN noticed_budget,
  DROP COLUMN noticed_percent;

DROP FUNCTION hopsplane.publish_event(text, text, text, jsonb);
DROP FUNCTION hopsplane.enqueue_job(text, jsonb, text);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

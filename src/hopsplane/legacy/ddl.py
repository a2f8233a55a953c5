"""The legacy 17-table schema: what it looks like, and which table goes where.

``LEGACY_COLUMNS`` is the contract the cleanup recognises (column names and the types
PostgreSQL reports with ``format_type``); ``LEGACY_DDL`` creates exactly that schema (used by
``hopsplane legacy generate`` and the tests).
"""

from __future__ import annotations

MIGRATED = (
    "users",
    "hopsworks_clusters",
    "user_hopsworks_assignments",
    "user_credits",
    "usage_daily",
)
"""Legacy tables whose rows move into the new schema."""

RETIRED = (
    "billing_history",
    "credit_transactions",
    "clusters",
    "feature_groups",
    "model_deployments",
    "instances_backup",
    "invoices",
    "stripe_products",
    "subscriptions",
    "usage_metrics",
    "user_pricing_overrides",
    "user_profiles",
)
"""The twelve tables the plan retires (dropped, or archived with --keep-legacy)."""

FINANCIAL_EXPECTED_EMPTY = ("billing_history", "credit_transactions", "invoices")
"""Financial tables the plan expects empty: rows in them stop the migration unless the
operator names the table with --allow-drop-nonempty."""

FOLDED_INTO_USERS = ("user_profiles", "user_pricing_overrides")
"""Retired tables whose rows are kept in users.metadata.legacy (nothing silently lost)."""

LEGACY_TABLES = MIGRATED + RETIRED

STAGING_SCHEMA = "legacy_staging"
ARCHIVE_SCHEMA = "legacy_archive"

_T = "timestamp with time zone"

LEGACY_COLUMNS: dict[str, dict[str, str]] = {
    "users": {
        "id": "text", "email": "text", "name": "text", "created_at": _T, "updated_at": _T,
        "last_login_at": _T, "stripe_customer_id": "text", "stripe_test_customer_id": "text",
        "hopsworks_username": "text", "is_admin": "boolean", "role": "text", "status": "text",
        "cluster_id": "uuid", "metadata": "jsonb",
    },
    "hopsworks_clusters": {
        "id": "uuid", "name": "text", "api_url": "text", "api_key": "text",
        "max_users": "integer", "current_users": "integer", "status": "text",
        "kubeconfig": "text", "metadata": "jsonb",
    },
    "user_hopsworks_assignments": {
        "id": "uuid", "user_id": "text", "hopsworks_cluster_id": "uuid",
        "hopsworks_username": "text", "hopsworks_user_id": "integer", "project_id": "integer",
        "assigned_at": _T, "assigned_by": "text", "status": "text", "created_at": _T,
    },
    "user_credits": {
        "user_id": "text", "total_purchased": "numeric(10,2)", "total_used": "numeric(10,2)",
        "free_credits": "numeric(10,2)", "updated_at": _T,
    },
    "usage_daily": {
        "id": "uuid", "user_id": "text", "date": "date", "hopsworks_cluster_id": "uuid",
        "cpu_hours": "numeric(10,4)", "gpu_hours": "numeric(10,4)",
        "storage_gb": "numeric(10,4)", "api_calls": "integer", "total_cost": "numeric(10,2)",
        "reported_to_stripe": "boolean", "created_at": _T,
    },
    "billing_history": {
        "id": "uuid", "user_id": "text", "amount": "numeric(10,2)", "description": "text",
        "stripe_invoice_id": "text", "created_at": _T,
    },
    "credit_transactions": {
        "id": "uuid", "user_id": "text", "amount": "numeric(10,2)", "type": "text",
        "stripe_payment_intent_id": "text", "created_at": _T,
    },
    "clusters": {
        "id": "uuid", "name": "text", "region": "text", "instance_type": "text",
        "status": "text", "created_at": _T,
    },
    "feature_groups": {
        "id": "uuid", "user_id": "text", "cluster_id": "uuid", "name": "text",
        "version": "integer", "created_at": _T,
    },
    "model_deployments": {
        "id": "uuid", "user_id": "text", "cluster_id": "uuid", "model_name": "text",
        "status": "text", "created_at": _T,
    },
    "instances_backup": {
        "id": "text", "user_id": "text", "instance_type": "text", "status": "text",
        "data": "jsonb", "backed_up_at": _T,
    },
    "invoices": {
        "id": "uuid", "user_id": "text", "stripe_invoice_id": "text",
        "amount_due": "numeric(10,2)", "status": "text", "period_start": "date",
        "period_end": "date", "created_at": _T,
    },
    "stripe_products": {
        "id": "text", "name": "text", "price_id": "text", "unit_amount": "integer",
        "currency": "text", "active": "boolean",
    },
    "subscriptions": {
        "id": "uuid", "user_id": "text", "cluster_id": "uuid", "stripe_subscription_id": "text",
        "stripe_product_id": "text", "status": "text", "created_at": _T,
    },
    "usage_metrics": {
        "id": "bigint", "user_id": "text", "metric": "text", "value": "numeric",
        "recorded_at": _T,
    },
    "user_pricing_overrides": {
        "user_id": "text", "unit_price": "numeric(10,4)", "discount_percent": "numeric(5,2)",
        "created_at": _T,
    },
    "user_profiles": {
        "user_id": "text", "full_name": "text", "company": "text", "country": "text",
        "phone": "text", "avatar_url": "text", "created_at": _T,
    },
}

assert set(LEGACY_COLUMNS) == set(LEGACY_TABLES)

LEGACY_DDL = """
CREATE TABLE clusters (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text, region text,
  instance_type text, status text, created_at timestamptz
);
CREATE TABLE users (
  id text PRIMARY KEY, email text UNIQUE NOT NULL, name text,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, last_login_at timestamptz,
  stripe_customer_id text, stripe_test_customer_id text, hopsworks_username text,
  is_admin boolean DEFAULT false, role text DEFAULT 'user', status text DEFAULT 'active',
  cluster_id uuid REFERENCES clusters(id), metadata jsonb DEFAULT '{}'
);
CREATE TABLE hopsworks_clusters (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL, api_url text NOT NULL,
  api_key text NOT NULL, max_users integer DEFAULT 100, current_users integer DEFAULT 0,
  status text DEFAULT 'active', kubeconfig text, metadata jsonb DEFAULT '{}'::jsonb
);
CREATE TABLE user_hopsworks_assignments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  hopsworks_cluster_id uuid REFERENCES hopsworks_clusters(id), hopsworks_username text,
  hopsworks_user_id integer, project_id integer, assigned_at timestamptz, assigned_by text,
  status text DEFAULT 'active', created_at timestamptz DEFAULT now()
);
CREATE TABLE user_credits (
  user_id text PRIMARY KEY REFERENCES users(id), total_purchased numeric(10,2) DEFAULT 0,
  total_used numeric(10,2) DEFAULT 0, free_credits numeric(10,2) DEFAULT 0,
  updated_at timestamptz DEFAULT now()
);
CREATE TABLE usage_daily (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  date date NOT NULL, hopsworks_cluster_id uuid REFERENCES hopsworks_clusters(id),
  cpu_hours numeric(10,4) DEFAULT 0, gpu_hours numeric(10,4) DEFAULT 0,
  storage_gb numeric(10,4) DEFAULT 0, api_calls integer DEFAULT 0,
  total_cost numeric(10,2) DEFAULT 0, reported_to_stripe boolean DEFAULT false,
  created_at timestamptz DEFAULT now(), UNIQUE (user_id, date, hopsworks_cluster_id)
);
CREATE TABLE billing_history (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  amount numeric(10,2), description text, stripe_invoice_id text, created_at timestamptz
);
CREATE TABLE credit_transactions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  amount numeric(10,2), type text, stripe_payment_intent_id text, created_at timestamptz
);
CREATE TABLE feature_groups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  cluster_id uuid REFERENCES clusters(id), name text, version integer, created_at timestamptz
);
CREATE TABLE model_deployments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  cluster_id uuid REFERENCES clusters(id), model_name text, status text,
  created_at timestamptz
);
CREATE TABLE instances_backup (
  id text, user_id text, instance_type text, status text, data jsonb, backed_up_at timestamptz
);
CREATE TABLE invoices (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  stripe_invoice_id text, amount_due numeric(10,2), status text, period_start date,
  period_end date, created_at timestamptz
);
CREATE TABLE stripe_products (
  id text PRIMARY KEY, name text, price_id text, unit_amount integer, currency text,
  active boolean
);
CREATE TABLE subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text REFERENCES users(id),
  cluster_id uuid REFERENCES clusters(id), stripe_subscription_id text,
  stripe_product_id text REFERENCES stripe_products(id), status text, created_at timestamptz
);
CREATE TABLE usage_metrics (
  id bigserial PRIMARY KEY, user_id text REFERENCES users(id), metric text, value numeric,
  recorded_at timestamptz
);
CREATE TABLE user_pricing_overrides (
  user_id text PRIMARY KEY REFERENCES users(id), unit_price numeric(10,4),
  discount_percent numeric(5,2), created_at timestamptz
);
CREATE TABLE user_profiles (
  user_id text PRIMARY KEY REFERENCES users(id), full_name text, company text, country text,
  phone text, avatar_url text, created_at timestamptz
);
"""

"""Settlement batches in a few set-based statements, the wallet locked only at the end; the
rounding functions made inlinable.

The function (frozen here as it shipped) replaces 0007's
df_request_settle_batch (which called df_request_settle once per item), and it still calls
df_request_settle for every item that does not settle the usual way."""

from importlib import import_module

from django.db import migrations

FORWARD = """\
-- Settlement batches in a few set-based statements (docs/money.md, "Batches"), replacing 0007's
-- df_request_settle_batch, which called df_request_settle once per item.
--
-- Why: that loop ran ~11 statements per item while holding the buyer's wallet row from the
-- batch's first statement to its commit. One busy buyer's holds (the next requests' first step)
-- queued behind every settlement batch for the whole of it: at 16 concurrent streams the hold
-- waited 15 ms. Here every item's rows are written first, with no account locked, and the
-- cached balances come last, one UPDATE per account, so the wallet is locked only for those
-- updates and the commit.
--
-- Same rules as df_request_settle (0005), for the items that settle the usual way: a live hold of
-- this buyer, not settled yet, the first occurrence of its request id in the batch, a fee profile
-- to charge by. Every other item (no live hold, already settled, another buyer's hold, a repeated
-- request id, no default fee profile) goes through df_request_settle itself, after those.
--
-- Lock order, as in 0007: hold rows by request id first, then ledger accounts by id. Any
-- exception rolls the whole batch back; the caller then retries its items one by one.
--
-- Every row a batch reads is found by a key, and both batch functions run with sequential scans
-- switched off: PL/pgSQL keeps one generic plan per statement, and one made while the tables were
-- small (a new database, the benchmark's) joined the items to billing_hold by scanning all of it,
-- a cost that grew with every request served (two full scans per batch, 5.5 M rows read in 8 s).
--
-- Loaded by migration 0008; to change a function, add a new file and a new migration.

-- The rounding rule and the two amounts built on it (0005), unchanged but for STRICT: a STRICT
-- SQL function whose body is not provably strict is never inlined, so every call ran through the
-- SQL function executor (about 20 us each; a settlement makes six). NULL in still gives NULL out.
CREATE OR REPLACE FUNCTION df_div_round_half_up(n numeric, d numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n >= 0 THEN div(2 * n + d, 2 * d) ELSE -div(2 * (-n) + d, 2 * d) END
$$;

CREATE OR REPLACE FUNCTION df_cost_nusd(units bigint, price_per_million_nusd bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT df_div_round_half_up(units::numeric * price_per_million_nusd, 1000000)::bigint
$$;

CREATE OR REPLACE FUNCTION df_fee_nusd(cost_nusd bigint, fee_bps integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT df_div_round_half_up(cost_nusd::numeric * fee_bps, 10000)::bigint
$$;

-- One item that settles the usual way, with its figures.
CREATE TYPE df_settlement_line AS (
    item_no integer,
    request_id text,
    hold_id bigint,
    wallet_id bigint,
    hold_amount_nusd bigint,
    buyer_id bigint,
    access_key_id bigint,
    listing_id bigint,
    seller_id bigint,
    model_id text,
    upstream_model text,
    price_unit text,
    ask_input_nusd bigint,
    ask_output_nusd bigint,
    input_units bigint,
    output_units bigint,
    ttft_ms integer,
    duration_ms integer,
    streamed boolean,
    outcome text,
    cost_nusd bigint,
    fee_bps integer,
    fee_profile_id bigint,
    fee_nusd bigint,
    seller_credit_nusd bigint,
    buyer_debit_nusd bigint,
    overrun_nusd bigint
);

-- A batch's items as rows, numbered from 1 in the array's order: df_request_settle's arguments
-- by name (without the p_ prefix).
CREATE FUNCTION df_settlement_items(p_items jsonb)
RETURNS TABLE (
    item_no integer, request_id text, buyer_id bigint, access_key_id bigint, listing_id bigint,
    seller_id bigint, model_id text, upstream_model text, price_unit text,
    ask_input_nusd bigint, ask_output_nusd bigint, input_units bigint, output_units bigint,
    ttft_ms integer, duration_ms integer, streamed boolean, outcome text
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT e.ord::integer, r.*
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(doc, ord)
    CROSS JOIN LATERAL jsonb_to_record(e.doc) AS r(
        request_id text, buyer_id bigint, access_key_id bigint, listing_id bigint,
        seller_id bigint, model_id text, upstream_model text, price_unit text,
        ask_input_nusd bigint, ask_output_nusd bigint, input_units bigint,
        output_units bigint, ttft_ms integer, duration_ms integer, streamed boolean,
        outcome text)
$$;

DROP FUNCTION df_request_settle_batch(jsonb, integer);

-- Items are a jsonb array of objects with df_request_settle's arguments by name (without the p_
-- prefix). One row per item, numbered from 1 in the array's order (callers ORDER BY item_no).
CREATE FUNCTION df_request_settle_batch(p_items jsonb, p_default_fee_bps integer)
RETURNS TABLE (
    item_no integer,
    request_id text,
    status text,
    cost_nusd bigint,
    buyer_debit_nusd bigint,
    overrun_nusd bigint,
    seller_credit_nusd bigint,
    fee_nusd bigint,
    fee_profile_id bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_lines df_settlement_line[];
    v_default_id bigint;
    v_default_bps integer;
    v_overrun_acct bigint;
    v_fee_acct bigint;
    v_wallets integer;
    v_updated integer;
    v_item record;
BEGIN
    PERFORM h.id FROM billing_hold h
        WHERE h.request_id = ANY (ARRAY(
            SELECT x ->> 'request_id' FROM jsonb_array_elements(p_items) x))
        ORDER BY h.request_id FOR UPDATE;

    SELECT p.id, p.fee_bps INTO v_default_id, v_default_bps
        FROM billing_feeprofile p WHERE p.is_default;

    -- The usual items and their figures, exactly as df_request_settle computes them.
    SELECT array_agg(ROW(
               f.item_no, f.request_id, f.hold_id, f.wallet_id, f.hold_amount_nusd, f.buyer_id,
               f.access_key_id, f.listing_id, f.seller_id, f.model_id, f.upstream_model,
               f.price_unit, f.ask_input_nusd, f.ask_output_nusd, f.input_units, f.output_units,
               f.ttft_ms, f.duration_ms, f.streamed, f.outcome, f.cost, f.bps, f.profile_id,
               df_fee_nusd(f.cost, f.bps),
               f.cost - df_fee_nusd(f.cost, f.bps),
               LEAST(f.cost, f.hold_amount_nusd),
               f.cost - LEAST(f.cost, f.hold_amount_nusd)
           )::df_settlement_line ORDER BY f.item_no)
        INTO v_lines
        FROM (
            SELECT x.*, h.id AS hold_id, h.account_id AS wallet_id,
                   h.amount_nusd AS hold_amount_nusd,
                   coalesce(op.id, v_default_id) AS profile_id,
                   coalesce(op.fee_bps, v_default_bps) AS bps,
                   CASE WHEN x.outcome <> 'completed' AND x.output_units = 0 THEN 0
                        ELSE df_cost_nusd(x.input_units, x.ask_input_nusd)
                           + df_cost_nusd(x.output_units, x.ask_output_nusd)
                   END AS cost
            FROM (
                SELECT i.*,
                       row_number() OVER (PARTITION BY i.request_id ORDER BY i.item_no)
                           AS occurrence
                FROM df_settlement_items(p_items) i
            ) x
            JOIN billing_hold h ON h.request_id = x.request_id
            LEFT JOIN billing_sellerfeeoverride o ON o.seller_id = x.seller_id
            LEFT JOIN billing_feeprofile op ON op.id = o.fee_profile_id
            WHERE x.occurrence = 1
              AND h.status = 'active'
              AND h.user_id = x.buyer_id
              AND coalesce(op.id, v_default_id) IS NOT NULL
              AND NOT EXISTS (
                  SELECT 1 FROM billing_usagerecord u WHERE u.request_id = x.request_id)
        ) f;
    v_lines := coalesce(v_lines, '{}');

    IF EXISTS (SELECT 1 FROM unnest(v_lines) l WHERE l.cost_nusd > 0) THEN
        PERFORM df_account_ensure('earnings', s.seller_id)
            FROM (SELECT DISTINCT l.seller_id FROM unnest(v_lines) l WHERE l.cost_nusd > 0) s;
        v_overrun_acct := df_platform_account_ensure('overrun');
        v_fee_acct := df_platform_account_ensure('fee_revenue');
    END IF;

    -- Their rows: the ledger transaction and its non-zero lines (the deferred trigger checks each
    -- sums to zero at commit), the hold marked settled, the usage record.
    WITH l AS (
        SELECT l.*, ea.id AS earnings_id
        FROM unnest(v_lines) l
        LEFT JOIN billing_ledgeraccount ea
            ON l.cost_nusd > 0 AND ea.kind = 'earnings' AND ea.user_id = l.seller_id
    ), txn AS (
        INSERT INTO billing_ledgertransaction
                (kind, idempotency_key, memo, request_id, created_by_id, created_at)
            SELECT 'settlement', 'settle:' || l.request_id,
                   left(l.model_id || ' via listing ' || coalesce(l.listing_id::text, 'None'), 500),
                   l.request_id, NULL, v_now
            FROM l WHERE l.cost_nusd > 0 ORDER BY l.item_no
            RETURNING id, billing_ledgertransaction.request_id
    ), entries AS (
        INSERT INTO billing_ledgerentry (transaction_id, account_id, amount_nusd, created_at)
            SELECT txn.id, line.account_id, line.amount, v_now
            FROM l JOIN txn ON txn.request_id = l.request_id
            CROSS JOIN LATERAL (VALUES (1, l.wallet_id, -l.buyer_debit_nusd),
                                       (2, v_overrun_acct, -l.overrun_nusd),
                                       (3, l.earnings_id, l.seller_credit_nusd),
                                       (4, v_fee_acct, l.fee_nusd)) AS line(n, account_id, amount)
            WHERE line.amount <> 0
            ORDER BY l.item_no, line.n
    ), holds AS (
        UPDATE billing_hold h SET status = 'settled', released_at = v_now
            FROM l WHERE h.id = l.hold_id
    )
    INSERT INTO billing_usagerecord (
        request_id, buyer_id, access_key_id, listing_id, seller_id, model_id, upstream_model,
        price_unit, ask_input_nusd, ask_output_nusd, input_units, output_units, cost_nusd,
        buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd, fee_bps, fee_profile_id,
        ttft_ms, duration_ms, streamed, outcome, transaction_id, refunded_at, created_at
    )
    SELECT l.request_id, l.buyer_id, l.access_key_id, l.listing_id, l.seller_id, l.model_id,
           l.upstream_model, l.price_unit, l.ask_input_nusd, l.ask_output_nusd, l.input_units,
           l.output_units, l.cost_nusd, l.buyer_debit_nusd, l.overrun_nusd,
           l.seller_credit_nusd, l.fee_nusd, l.fee_bps, l.fee_profile_id, l.ttft_ms,
           l.duration_ms, l.streamed, l.outcome, txn.id, NULL, v_now
    FROM l LEFT JOIN txn ON txn.request_id = l.request_id
    ORDER BY l.item_no;

    -- Last: every account any item may touch, locked in id order, then the cached balances, one
    -- UPDATE per account. The wallet's new available balance (balance - held) may not go below
    -- zero, nor its held amount.
    PERFORM a.id FROM billing_ledgeraccount a
        WHERE (a.kind = 'wallet' AND a.user_id = ANY (ARRAY(
                  SELECT (x ->> 'buyer_id')::bigint FROM jsonb_array_elements(p_items) x)))
           OR (a.kind = 'earnings' AND a.user_id = ANY (ARRAY(
                  SELECT (x ->> 'seller_id')::bigint FROM jsonb_array_elements(p_items) x)))
        ORDER BY a.id FOR NO KEY UPDATE;
    SELECT count(DISTINCT l.wallet_id) INTO v_wallets FROM unnest(v_lines) l;
    UPDATE billing_ledgeraccount a
        SET balance_nusd = a.balance_nusd - w.debit, held_nusd = a.held_nusd + w.held_delta
        FROM (SELECT l.wallet_id, sum(l.buyer_debit_nusd) AS debit,
                     -sum(l.hold_amount_nusd) AS held_delta
              FROM unnest(v_lines) l GROUP BY l.wallet_id) w
        WHERE a.id = w.wallet_id
          AND a.balance_nusd >= a.held_nusd + (w.held_delta + w.debit)
          AND a.held_nusd >= -w.held_delta;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    IF v_updated <> v_wallets THEN
        RAISE EXCEPTION 'The balance does not cover this amount.' USING ERRCODE = 'DF001';
    END IF;
    UPDATE billing_ledgeraccount a SET balance_nusd = a.balance_nusd + e.credit
        FROM (SELECT ea.id, sum(l.seller_credit_nusd) AS credit
              FROM unnest(v_lines) l
              JOIN billing_ledgeraccount ea ON ea.kind = 'earnings' AND ea.user_id = l.seller_id
              WHERE l.seller_credit_nusd <> 0
              GROUP BY ea.id) e
        WHERE a.id = e.id;

    RETURN QUERY
        SELECT l.item_no, l.request_id, 'settled'::text, l.cost_nusd, l.buyer_debit_nusd,
               l.overrun_nusd, l.seller_credit_nusd, l.fee_nusd, l.fee_profile_id
        FROM unnest(v_lines) l;

    -- The other items, one by one, in order, by the single function (their accounts are locked).
    FOR v_item IN
        SELECT * FROM df_settlement_items(p_items) i
        WHERE i.item_no NOT IN (SELECT l.item_no FROM unnest(v_lines) l)
        ORDER BY i.item_no
    LOOP
        RETURN QUERY SELECT v_item.item_no, v_item.request_id, s.* FROM df_request_settle(
            v_item.request_id, v_item.buyer_id, v_item.access_key_id, v_item.listing_id,
            v_item.seller_id, v_item.model_id, v_item.upstream_model, v_item.price_unit,
            v_item.ask_input_nusd, v_item.ask_output_nusd, v_item.input_units,
            v_item.output_units, v_item.ttft_ms, v_item.duration_ms, v_item.streamed,
            v_item.outcome, p_default_fee_bps) s;
    END LOOP;
END;
$$;

ALTER FUNCTION df_request_settle_batch(jsonb, integer) SET enable_seqscan = off;
ALTER FUNCTION df_hold_place_batch(jsonb) SET enable_seqscan = off;
"""

# Back to 0005's rounding functions and 0007's batch function (their frozen SQL recreates them).
BACKWARD = (
    "DROP FUNCTION IF EXISTS df_request_settle_batch(jsonb, integer);\n"
    "DROP TYPE IF EXISTS df_settlement_line;\n"
    "DROP FUNCTION IF EXISTS df_settlement_items(jsonb);\n"
    "ALTER FUNCTION df_hold_place_batch(jsonb) RESET enable_seqscan;\n"
    + import_module("billing.migrations.0005_money_fastpath").FORWARD
    + import_module("billing.migrations.0007_money_batches").FORWARD
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_money_batches")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

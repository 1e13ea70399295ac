"""Billing policy rule 4: a buyer who leaves after the upstream accepted pays the prompt.

The settlement functions are redefined (frozen here as they shipped) with one
condition changed; going back swaps that condition back."""

from django.db import migrations

FORWARD = """\
-- Billing policy rule 4 (docs/billing-policy.md): a buyer who leaves after the upstream accepted
-- the request pays the prompt, even before the first token. Only an upstream that failed before
-- any content costs nothing now (was: any outcome but 'completed' without content). The two
-- settlement functions of 0005 and 0008, redefined with that one condition changed; the gateway
-- voids the hold, and never settles, when no upstream accepted the request.

-- Settle one request exactly once. status: 'settled' | 'already_settled' (the first settlement's
-- figures are returned) | 'wrong_buyer' (the hold belongs to another buyer; nothing written).
-- Raises on broken invariants only: DF001 = the wallet cannot cover the debit (InsufficientBalance).
--
-- Order: the hold row is locked first (concurrent settlements of one request queue there), then
-- everything that does not touch a user account's row, and last the cached balances of the
-- earnings account and the wallet, in account id order (a fixed lock order: no deadlocks), so the
-- wallet's row lock is held for as short a time as possible. Without a live hold the wallet's
-- available balance decides the debit, so the user accounts are locked (id order) before it is read.
CREATE OR REPLACE FUNCTION df_request_settle(
    p_request_id text,
    p_buyer_id bigint,
    p_access_key_id bigint,
    p_listing_id bigint,
    p_seller_id bigint,
    p_model_id text,
    p_upstream_model text,
    p_price_unit text,
    p_ask_input_nusd bigint,
    p_ask_output_nusd bigint,
    p_input_units bigint,
    p_output_units bigint,
    p_ttft_ms integer,
    p_duration_ms integer,
    p_streamed boolean,
    p_outcome text,
    p_default_fee_bps integer,
    OUT status text,
    OUT cost_nusd bigint,
    OUT buyer_debit_nusd bigint,
    OUT overrun_nusd bigint,
    OUT seller_credit_nusd bigint,
    OUT fee_nusd bigint,
    OUT fee_profile_id bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_hold billing_hold%ROWTYPE;
    v_done billing_usagerecord%ROWTYPE;
    v_hold_active boolean;
    v_fee_bps integer;
    v_wallet bigint;
    v_earnings bigint;
    v_overrun_acct bigint;
    v_fee_acct bigint;
    v_balance bigint;
    v_held bigint;
    v_held_delta bigint := 0;
    v_txn bigint;
    v_acct bigint;
BEGIN
    -- Exactly once: concurrent settlements of this request wait on the hold row, then see the
    -- first one's usage record (each statement takes a fresh snapshot under READ COMMITTED).
    SELECT * INTO v_hold FROM billing_hold WHERE request_id = p_request_id FOR UPDATE;
    SELECT * INTO v_done FROM billing_usagerecord u WHERE u.request_id = p_request_id;
    IF FOUND THEN
        SELECT 'already_settled', v_done.cost_nusd, v_done.buyer_debit_nusd, v_done.overrun_nusd,
               v_done.seller_credit_nusd, v_done.fee_nusd, v_done.fee_profile_id
            INTO status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd,
                 fee_nusd, fee_profile_id;
        RETURN;
    END IF;
    IF v_hold.id IS NOT NULL AND v_hold.user_id <> p_buyer_id THEN
        status := 'wrong_buyer';
        RETURN;
    END IF;

    -- The billing policy: an upstream that failed before any content costs nothing.
    IF p_outcome = 'upstream_failed' AND p_output_units = 0 THEN
        cost_nusd := 0;
    ELSE
        cost_nusd := df_cost_nusd(p_input_units, p_ask_input_nusd)
                   + df_cost_nusd(p_output_units, p_ask_output_nusd);
    END IF;

    -- The fee profile: the seller's override, else the default (recreated if it was deleted).
    SELECT o.fee_profile_id, p.fee_bps INTO fee_profile_id, v_fee_bps
        FROM billing_sellerfeeoverride o JOIN billing_feeprofile p ON p.id = o.fee_profile_id
        WHERE o.seller_id = p_seller_id;
    IF NOT FOUND THEN
        SELECT p.id, p.fee_bps INTO fee_profile_id, v_fee_bps
            FROM billing_feeprofile p WHERE p.is_default;
        IF NOT FOUND THEN
            INSERT INTO billing_feeprofile (name, fee_bps, is_default, created_at)
                VALUES ('Default', p_default_fee_bps, true, v_now)
                ON CONFLICT DO NOTHING
                RETURNING id, fee_bps INTO fee_profile_id, v_fee_bps;
            IF NOT FOUND THEN
                SELECT p.id, p.fee_bps INTO STRICT fee_profile_id, v_fee_bps
                    FROM billing_feeprofile p WHERE p.is_default;
            END IF;
        END IF;
    END IF;
    fee_nusd := df_fee_nusd(cost_nusd, v_fee_bps);
    seller_credit_nusd := cost_nusd - fee_nusd;

    v_wallet := df_account_ensure('wallet', p_buyer_id);
    IF cost_nusd > 0 THEN
        v_earnings := df_account_ensure('earnings', p_seller_id);
        v_overrun_acct := df_platform_account_ensure('overrun');
        v_fee_acct := df_platform_account_ensure('fee_revenue');
    END IF;

    v_hold_active := v_hold.id IS NOT NULL AND v_hold.status = 'active';
    IF v_hold_active THEN
        buyer_debit_nusd := LEAST(cost_nusd, v_hold.amount_nusd);
        v_held_delta := -v_hold.amount_nusd;
    ELSIF cost_nusd = 0 THEN
        buyer_debit_nusd := 0;
    ELSE
        -- No live hold (never placed, or voided by the reaper): charge what is available now.
        PERFORM id FROM billing_ledgeraccount WHERE id IN (v_wallet, v_earnings)
            ORDER BY id FOR NO KEY UPDATE;
        -- Settled meanwhile by a concurrent call that held these locks (no hold row to queue on)?
        SELECT * INTO v_done FROM billing_usagerecord u WHERE u.request_id = p_request_id;
        IF FOUND THEN
            SELECT 'already_settled', v_done.cost_nusd, v_done.buyer_debit_nusd,
                   v_done.overrun_nusd, v_done.seller_credit_nusd, v_done.fee_nusd,
                   v_done.fee_profile_id
                INTO status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd,
                     fee_nusd, fee_profile_id;
            RETURN;
        END IF;
        SELECT balance_nusd, held_nusd INTO v_balance, v_held
            FROM billing_ledgeraccount WHERE id = v_wallet;
        buyer_debit_nusd := LEAST(cost_nusd, GREATEST(v_balance - v_held, 0));
    END IF;
    overrun_nusd := cost_nusd - buyer_debit_nusd;

    IF cost_nusd > 0 THEN
        INSERT INTO billing_ledgertransaction
                (kind, idempotency_key, memo, request_id, created_by_id, created_at)
            VALUES ('settlement', 'settle:' || p_request_id,
                    left(p_model_id || ' via listing ' || coalesce(p_listing_id::text, 'None'), 500),
                    p_request_id, NULL, v_now)
            RETURNING id INTO v_txn;
        -- Zero lines are dropped; the deferred trigger checks the sum at commit.
        INSERT INTO billing_ledgerentry (transaction_id, account_id, amount_nusd, created_at)
            SELECT v_txn, line.account_id, line.amount, v_now
            FROM (VALUES (1, v_wallet, -buyer_debit_nusd),
                         (2, v_overrun_acct, -overrun_nusd),
                         (3, v_earnings, seller_credit_nusd),
                         (4, v_fee_acct, fee_nusd)) AS line(n, account_id, amount)
            WHERE line.amount <> 0
            ORDER BY line.n;
    END IF;
    IF v_hold_active THEN
        UPDATE billing_hold SET status = 'settled', released_at = v_now WHERE id = v_hold.id;
    END IF;
    INSERT INTO billing_usagerecord (
        request_id, buyer_id, access_key_id, listing_id, seller_id, model_id, upstream_model,
        price_unit, ask_input_nusd, ask_output_nusd, input_units, output_units, cost_nusd,
        buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd, fee_bps, fee_profile_id,
        ttft_ms, duration_ms, streamed, outcome, transaction_id, refunded_at, created_at
    ) VALUES (
        p_request_id, p_buyer_id, p_access_key_id, p_listing_id, p_seller_id, p_model_id,
        p_upstream_model, p_price_unit, p_ask_input_nusd, p_ask_output_nusd, p_input_units,
        p_output_units, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd,
        v_fee_bps, fee_profile_id, p_ttft_ms, p_duration_ms, p_streamed, p_outcome, v_txn, NULL,
        v_now
    );

    -- Last: the cached balances of the user accounts, in account id order.
    FOR v_acct IN
        SELECT a.id FROM (VALUES (v_wallet), (v_earnings)) AS a(id)
            WHERE a.id IS NOT NULL ORDER BY a.id
    LOOP
        IF v_acct = v_wallet THEN
            IF cost_nusd > 0 AND (buyer_debit_nusd <> 0 OR v_held_delta <> 0) THEN
                -- The new available balance (balance - held) may not go below zero.
                UPDATE billing_ledgeraccount
                    SET balance_nusd = balance_nusd - buyer_debit_nusd,
                        held_nusd = held_nusd + v_held_delta
                    WHERE id = v_wallet
                      AND balance_nusd >= held_nusd + (v_held_delta + buyer_debit_nusd)
                      AND held_nusd >= -v_held_delta;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'The balance does not cover this amount.'
                        USING ERRCODE = 'DF001';
                END IF;
            ELSIF cost_nusd = 0 AND v_held_delta <> 0 THEN
                UPDATE billing_ledgeraccount SET held_nusd = held_nusd + v_held_delta
                    WHERE id = v_wallet;
            END IF;
        ELSIF seller_credit_nusd <> 0 THEN
            UPDATE billing_ledgeraccount SET balance_nusd = balance_nusd + seller_credit_nusd
                WHERE id = v_earnings;
        END IF;
    END LOOP;
    status := 'settled';
END;
$$;

-- Items are a jsonb array of objects with df_request_settle's arguments by name (without the p_
-- prefix). One row per item, numbered from 1 in the array's order (callers ORDER BY item_no).
CREATE OR REPLACE FUNCTION df_request_settle_batch(p_items jsonb, p_default_fee_bps integer)
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
                   CASE WHEN x.outcome = 'upstream_failed' AND x.output_units = 0 THEN 0
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
"""
BACKWARD = FORWARD.replace(
    "p_outcome = 'upstream_failed' AND p_output_units = 0",
    "p_outcome <> 'completed' AND p_output_units = 0",
).replace(
    "x.outcome = 'upstream_failed' AND x.output_units = 0",
    "x.outcome <> 'completed' AND x.output_units = 0",
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_settle_batch_in_sets")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

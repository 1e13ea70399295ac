"""Balance leases (gateway/balance_leases.py): one hold that a gateway process draws many of a busy
buyer's requests from, so those requests place no hold of their own.

df_lease_place places a lease: a hold like any other (same gate, same row, same reaper), only while
the wallet's available balance is at least `p_headroom` times the lease. df_settle_apply,
df_settle_items and df_settle_apply_batch are 0017's with one more argument, `lease_id` (after the
SLA promise): a settlement that names a lease is debited against it, and the lease's amount (what it
still covers) and the wallet's held amount go down by that debit. Without a lease nothing changes.
"""

from django.db import migrations

LEASE = """\
-- A balance lease: a hold of p_amount_nusd under p_lease_id, placed only while the wallet's
-- available balance (balance - held) is at least p_headroom times it, so a lease never takes what
-- the buyer's other requests and processes need. Commits like any transaction (no relaxed
-- commit: one lease covers many requests). 'placed' | 'exists' | 'insufficient' | 'no_wallet'.
CREATE FUNCTION df_lease_place(
    p_lease_id text, p_user_id bigint, p_amount_nusd bigint, p_headroom integer
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_wallet bigint;
    v_hold bigint;
BEGIN
    SELECT id INTO v_wallet FROM billing_ledgeraccount
        WHERE user_id = p_user_id AND kind = 'wallet';
    IF v_wallet IS NULL THEN
        RETURN 'no_wallet';
    END IF;
    PERFORM df_wallet_holds_gate(v_wallet, false);
    INSERT INTO billing_hold
            (request_id, user_id, account_id, amount_nusd, status, void_reason, created_at)
        VALUES (p_lease_id, p_user_id, v_wallet, p_amount_nusd, 'active', '', clock_timestamp())
        ON CONFLICT (request_id) DO NOTHING
        RETURNING id INTO v_hold;
    IF v_hold IS NULL THEN
        RETURN 'exists';
    END IF;
    UPDATE billing_ledgeraccount SET held_nusd = held_nusd + p_amount_nusd
        WHERE id = v_wallet
          AND (balance_nusd - held_nusd)::numeric >= p_amount_nusd::numeric * p_headroom;
    IF NOT FOUND THEN
        DELETE FROM billing_hold WHERE id = v_hold;
        RETURN 'insufficient';
    END IF;
    RETURN 'placed';
END;
$$;
"""

SETTLE = """\
DROP FUNCTION IF EXISTS df_settle_apply_batch(jsonb, integer);
DROP FUNCTION IF EXISTS df_settle_items(jsonb);
DROP FUNCTION IF EXISTS df_settle_apply(
    text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,
    integer, integer, boolean, text, jsonb, integer, bigint, bigint, bigint, integer, boolean,
    bigint, integer);

-- Book one request's settlement exactly once, with the figures billing.pricing computed, against
-- its own hold, or against the balance lease it drew from (p_lease_id: the lease's hold row).
-- status: 'settled' | 'already_settled' (the first settlement's figures are returned) |
-- 'wrong_buyer' (the hold belongs to another buyer) | 'reprice' (the seller's fee profile is not
-- p_fee_profile_id at p_fee_bps: fee_profile_id and fee_bps are the current one; price again).
-- Nothing is written unless 'settled'. Raises on broken invariants only: DF001 = the wallet
-- cannot cover the debit; DF003 = figures that cannot be a price.
--
-- A lease is a hold that covers many requests: its amount is what it still covers. A settlement
-- against it debits the wallet and lowers the lease (and the wallet's held amount) by the same
-- debit; the debit that spends it to the last nano-dollar ends it ('settled').
--
-- Order: the hold row is locked first (concurrent settlements of one request, or of one lease,
-- queue there), then
-- everything that does not touch a user account's row, and last the cached balances of the
-- earnings account and the wallet, in account id order (a fixed lock order: no deadlocks).
-- Without a live hold the wallet's available balance decides the debit, so the user accounts
-- are locked (id order) before it is read.
CREATE FUNCTION df_settle_apply(
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
    p_route jsonb,
    p_sla_max_ttft_ms integer,
    p_lease_id text,
    p_cost_nusd bigint,
    p_fee_nusd bigint,
    p_fee_profile_id bigint,
    p_fee_bps integer,
    p_sla_breached boolean,
    p_sla_waived_nusd bigint,
    p_default_fee_bps integer,
    OUT status text,
    OUT cost_nusd bigint,
    OUT buyer_debit_nusd bigint,
    OUT overrun_nusd bigint,
    OUT seller_credit_nusd bigint,
    OUT fee_nusd bigint,
    OUT fee_profile_id bigint,
    OUT fee_bps integer
)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_hold billing_hold%ROWTYPE;
    v_done billing_usagerecord%ROWTYPE;
    v_hold_active boolean;
    v_coverable bigint;
    v_wallet bigint;
    v_earnings bigint;
    v_overrun_acct bigint;
    v_fee_acct bigint;
    v_held_delta bigint := 0;
    v_txn bigint;
    v_acct bigint;
BEGIN
    IF p_cost_nusd < 0 OR p_fee_nusd < 0 OR p_fee_nusd > p_cost_nusd
            OR p_sla_waived_nusd < 0
            OR (p_sla_breached AND (p_cost_nusd <> 0 OR p_sla_max_ttft_ms IS NULL))
            OR (NOT p_sla_breached AND p_sla_waived_nusd <> 0) THEN
        RAISE EXCEPTION 'Not a price: cost % with fee %, % waived.', p_cost_nusd, p_fee_nusd,
            p_sla_waived_nusd USING ERRCODE = 'DF003';
    END IF;
    -- Exactly once: concurrent settlements of this request wait on the hold row, then see the
    -- first one's usage record (each statement takes a fresh snapshot under READ COMMITTED).
    SELECT * INTO v_hold FROM billing_hold
        WHERE request_id = coalesce(p_lease_id, p_request_id) FOR UPDATE;
    SELECT * INTO v_done FROM billing_usagerecord u WHERE u.request_id = p_request_id;
    IF FOUND THEN
        SELECT 'already_settled', v_done.cost_nusd, v_done.buyer_debit_nusd, v_done.overrun_nusd,
               v_done.seller_credit_nusd, v_done.fee_nusd, v_done.fee_profile_id, v_done.fee_bps
            INTO status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd,
                 fee_nusd, fee_profile_id, fee_bps;
        RETURN;
    END IF;
    IF v_hold.id IS NOT NULL AND v_hold.user_id <> p_buyer_id THEN
        status := 'wrong_buyer';
        RETURN;
    END IF;

    -- The fee profile: the seller's override, else the default (recreated if it was deleted).
    SELECT o.fee_profile_id, p.fee_bps INTO fee_profile_id, fee_bps
        FROM billing_sellerfeeoverride o JOIN billing_feeprofile p ON p.id = o.fee_profile_id
        WHERE o.seller_id = p_seller_id;
    IF NOT FOUND THEN
        SELECT p.id, p.fee_bps INTO fee_profile_id, fee_bps
            FROM billing_feeprofile p WHERE p.is_default;
        IF NOT FOUND THEN
            INSERT INTO billing_feeprofile (name, fee_bps, is_default, created_at)
                VALUES ('Default', p_default_fee_bps, true, v_now)
                ON CONFLICT DO NOTHING
                RETURNING id, billing_feeprofile.fee_bps INTO fee_profile_id, fee_bps;
            IF NOT FOUND THEN
                SELECT p.id, p.fee_bps INTO STRICT fee_profile_id, fee_bps
                    FROM billing_feeprofile p WHERE p.is_default;
            END IF;
        END IF;
    END IF;
    IF fee_profile_id IS DISTINCT FROM p_fee_profile_id OR fee_bps IS DISTINCT FROM p_fee_bps THEN
        status := 'reprice';
        RETURN;
    END IF;
    cost_nusd := p_cost_nusd;
    fee_nusd := p_fee_nusd;
    seller_credit_nusd := p_cost_nusd - p_fee_nusd;

    v_wallet := df_account_ensure('wallet', p_buyer_id);
    IF cost_nusd > 0 THEN
        v_earnings := df_account_ensure('earnings', p_seller_id);
        v_overrun_acct := df_platform_account_ensure('overrun');
        v_fee_acct := df_platform_account_ensure('fee_revenue');
    END IF;

    v_hold_active := v_hold.id IS NOT NULL AND v_hold.status = 'active';
    IF v_hold_active THEN
        v_coverable := v_hold.amount_nusd;
    ELSIF cost_nusd = 0 THEN
        v_coverable := 0;
    ELSE
        -- No live hold (never placed, or voided by the reaper): charge what is available now.
        PERFORM id FROM billing_ledgeraccount WHERE id IN (v_wallet, v_earnings)
            ORDER BY id FOR NO KEY UPDATE;
        -- Settled meanwhile by a concurrent call that held these locks (no hold row to queue on)?
        SELECT * INTO v_done FROM billing_usagerecord u WHERE u.request_id = p_request_id;
        IF FOUND THEN
            SELECT 'already_settled', v_done.cost_nusd, v_done.buyer_debit_nusd,
                   v_done.overrun_nusd, v_done.seller_credit_nusd, v_done.fee_nusd,
                   v_done.fee_profile_id, v_done.fee_bps
                INTO status, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd,
                     fee_nusd, fee_profile_id, fee_bps;
            RETURN;
        END IF;
        SELECT balance_nusd - held_nusd INTO v_coverable
            FROM billing_ledgeraccount WHERE id = v_wallet;
    END IF;
    -- billing.pricing.price's split: the buyer pays what is coverable, the rest is overrun.
    buyer_debit_nusd := LEAST(cost_nusd, GREATEST(v_coverable, 0));
    overrun_nusd := cost_nusd - buyer_debit_nusd;
    IF v_hold_active THEN
        -- A request's own hold is released whole; a lease by what this request was debited.
        v_held_delta := -(CASE WHEN p_lease_id IS NULL THEN v_hold.amount_nusd
                               ELSE buyer_debit_nusd END);
    END IF;

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
    IF v_hold_active AND (p_lease_id IS NULL OR buyer_debit_nusd = v_hold.amount_nusd) THEN
        UPDATE billing_hold SET status = 'settled', released_at = v_now WHERE id = v_hold.id;
    ELSIF v_hold_active AND buyer_debit_nusd > 0 THEN
        UPDATE billing_hold SET amount_nusd = amount_nusd - buyer_debit_nusd WHERE id = v_hold.id;
    END IF;
    INSERT INTO billing_usagerecord (
        request_id, buyer_id, access_key_id, listing_id, seller_id, model_id, upstream_model,
        price_unit, ask_input_nusd, ask_output_nusd, input_units, output_units, cost_nusd,
        buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd, fee_bps, fee_profile_id,
        ttft_ms, duration_ms, streamed, outcome, route, transaction_id, refunded_at, created_at,
        sla_max_ttft_ms, sla_breached, sla_waived_nusd
    ) VALUES (
        p_request_id, p_buyer_id, p_access_key_id, p_listing_id, p_seller_id, p_model_id,
        p_upstream_model, p_price_unit, p_ask_input_nusd, p_ask_output_nusd, p_input_units,
        p_output_units, cost_nusd, buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd,
        fee_bps, fee_profile_id, p_ttft_ms, p_duration_ms, p_streamed, p_outcome, p_route, v_txn,
        NULL, v_now, p_sla_max_ttft_ms, p_sla_breached, p_sla_waived_nusd
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
                        held_nusd = held_nusd + v_held_delta,
                        spent_nusd = spent_nusd + buyer_debit_nusd
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

-- A batch's items as rows, numbered from 1 in the array's order: df_settle_apply's arguments by
-- name (without the p_ prefix).
CREATE FUNCTION df_settle_items(p_items jsonb)
RETURNS TABLE (
    item_no integer, request_id text, buyer_id bigint, access_key_id bigint, listing_id bigint,
    seller_id bigint, model_id text, upstream_model text, price_unit text,
    ask_input_nusd bigint, ask_output_nusd bigint, input_units bigint, output_units bigint,
    ttft_ms integer, duration_ms integer, streamed boolean, outcome text, route jsonb,
    sla_max_ttft_ms integer, lease_id text, cost_nusd bigint, fee_nusd bigint,
    fee_profile_id bigint, fee_bps integer, sla_breached boolean, sla_waived_nusd bigint
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT e.ord::integer, r.*
    FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(doc, ord)
    CROSS JOIN LATERAL jsonb_to_record(e.doc) AS r(
        request_id text, buyer_id bigint, access_key_id bigint, listing_id bigint,
        seller_id bigint, model_id text, upstream_model text, price_unit text,
        ask_input_nusd bigint, ask_output_nusd bigint, input_units bigint,
        output_units bigint, ttft_ms integer, duration_ms integer, streamed boolean,
        outcome text, route jsonb, sla_max_ttft_ms integer, lease_id text, cost_nusd bigint,
        fee_nusd bigint, fee_profile_id bigint, fee_bps integer, sla_breached boolean,
        sla_waived_nusd bigint)
$$;

-- Items are a jsonb array of objects with df_settle_apply's arguments by name (without the p_
-- prefix). One row per item, numbered from 1 in the array's order (callers ORDER BY item_no).
-- The batch's hold rows (a request's own, or the lease it drew from, by request id), then every account its items may touch (by id) are
-- locked first, in that one global order, so concurrent batches cannot deadlock; then the
-- primitive books each item in order.
CREATE FUNCTION df_settle_apply_batch(p_items jsonb, p_default_fee_bps integer)
RETURNS TABLE (
    item_no integer,
    request_id text,
    status text,
    cost_nusd bigint,
    buyer_debit_nusd bigint,
    overrun_nusd bigint,
    seller_credit_nusd bigint,
    fee_nusd bigint,
    fee_profile_id bigint,
    fee_bps integer
)
LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
BEGIN
    PERFORM h.id FROM billing_hold h
        WHERE h.request_id IN (SELECT coalesce(i.lease_id, i.request_id)
                               FROM df_settle_items(p_items) i)
        ORDER BY h.request_id FOR UPDATE;
    PERFORM df_account_ensure('wallet', b.buyer_id)
        FROM (SELECT DISTINCT i.buyer_id FROM df_settle_items(p_items) i ORDER BY 1) b;
    PERFORM df_account_ensure('earnings', s.seller_id)
        FROM (SELECT DISTINCT i.seller_id FROM df_settle_items(p_items) i WHERE i.cost_nusd > 0
              ORDER BY 1) s;
    PERFORM a.id FROM billing_ledgeraccount a
        WHERE (a.kind = 'wallet' AND a.user_id IN (SELECT i.buyer_id FROM df_settle_items(p_items) i))
           OR (a.kind = 'earnings' AND a.user_id IN (SELECT i.seller_id FROM df_settle_items(p_items) i))
        ORDER BY a.id FOR NO KEY UPDATE;

    FOR v_item IN SELECT * FROM df_settle_items(p_items) i ORDER BY i.item_no LOOP
        RETURN QUERY SELECT v_item.item_no, v_item.request_id, s.* FROM df_settle_apply(
            v_item.request_id, v_item.buyer_id, v_item.access_key_id, v_item.listing_id,
            v_item.seller_id, v_item.model_id, v_item.upstream_model, v_item.price_unit,
            v_item.ask_input_nusd, v_item.ask_output_nusd, v_item.input_units,
            v_item.output_units, v_item.ttft_ms, v_item.duration_ms, v_item.streamed,
            v_item.outcome, v_item.route, v_item.sla_max_ttft_ms, v_item.lease_id,
            v_item.cost_nusd, v_item.fee_nusd, v_item.fee_profile_id, v_item.fee_bps,
            v_item.sla_breached, v_item.sla_waived_nusd, p_default_fee_bps) s;
    END LOOP;
END;
$$;
"""

# Back to 0017's functions (its FORWARD drops 0014's signatures only, so drop ours first).
BACKWARD = (
    "DROP FUNCTION IF EXISTS df_lease_place(text, bigint, bigint, integer);\n"
    "DROP FUNCTION IF EXISTS df_settle_apply_batch(jsonb, integer);\n"
    "DROP FUNCTION IF EXISTS df_settle_items(jsonb);\n"
    "DROP FUNCTION IF EXISTS df_settle_apply("
    "text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,"
    " integer, integer, boolean, text, jsonb, integer, text, bigint, bigint, bigint, integer,"
    " boolean, bigint, integer);\n"
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEASE + SETTLE, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from importlib import import_module

        schema_editor.execute(BACKWARD, params=None)
        schema_editor.execute(
            import_module("billing.migrations.0017_usage_sla_refund").FORWARD, params=None
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0018_buyer_disputes")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

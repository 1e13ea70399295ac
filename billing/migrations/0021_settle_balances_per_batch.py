"""A settlement batch moves each account's cached balance once, not once per item.

Measured (2026-12-05, a batch of 12 / 40 settlements drawn from one balance lease, each batch
committed): the two UPDATEs of the wallet's and the earnings account's row were 60-70 us of an
item's 250-330 us in df_settle_apply_batch, every item writing a new version of the same two
rows. Now:

- df_settle_balances moves the cached balances of settlements whose figures it is given, summed
  per account, each account once, in account id order (the wallet's check that its available
  balance stays at or above zero, DF001, is the one the primitive had);
- df_settle_apply (one more argument, p_defer_balances, false by default, and three more
  results) books as before and, unless deferred, ends with df_settle_balances for its one item;
- df_settle_apply_batch books its items deferred and moves the balances once at the end. An item
  without a live hold answers 'flush' with nothing written, since its debit is what the wallet
  has available: the batch moves what it has summed so far and books that item again, not
  deferred, exactly as a call of its own would.

The result of every item, and the rows written, are the ones the items booked one by one give.
The wallet's check on a sum is its check on each item in turn: an item drawn from a lease leaves
the available balance as it was, an item settling its own hold raises it, and an item without a
live hold is booked after a move, against the balance it reads. A free request's release of its
own hold now passes the same check, which rows the table's constraints allow cannot fail.
"""

from importlib import import_module

from django.db import migrations

FORWARD = """\
DROP FUNCTION df_settle_apply(
    text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,
    integer, integer, boolean, text, jsonb, integer, text, bigint, bigint, bigint, integer,
    boolean, bigint, integer);

-- Move the cached balances of settlements, given their figures (element n of each array:
-- settlement n): the wallet debited by the debit (and spent by it) and its held amount moved by
-- the held delta, the earnings account credited; a NULL account moves nothing. Summed per
-- account, each account once, in account id order (a fixed lock order: no deadlocks). DF001: the
-- wallet's available balance (balance - held) would go below zero.
CREATE FUNCTION df_settle_balances(
    p_wallets bigint[],
    p_debits_nusd bigint[],
    p_held_deltas_nusd bigint[],
    p_earnings bigint[],
    p_credits_nusd bigint[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_move record;
BEGIN
    FOR v_move IN
        SELECT m.id, m.is_wallet, sum(m.debit)::bigint AS debit,
               sum(m.held_delta)::bigint AS held_delta, sum(m.credit)::bigint AS credit
        FROM (SELECT w.id, true AS is_wallet, w.debit, w.held_delta, 0::bigint AS credit
                  FROM unnest(p_wallets, p_debits_nusd, p_held_deltas_nusd)
                      AS w(id, debit, held_delta)
              UNION ALL
              SELECT e.id, false, 0, 0, e.credit
                  FROM unnest(p_earnings, p_credits_nusd) AS e(id, credit)) m
        WHERE m.id IS NOT NULL
        GROUP BY m.id, m.is_wallet
        ORDER BY m.id
    LOOP
        IF v_move.is_wallet THEN
            IF v_move.debit <> 0 OR v_move.held_delta <> 0 THEN
                UPDATE billing_ledgeraccount
                    SET balance_nusd = balance_nusd - v_move.debit,
                        held_nusd = held_nusd + v_move.held_delta,
                        spent_nusd = spent_nusd + v_move.debit
                    WHERE id = v_move.id
                      AND balance_nusd >= held_nusd + (v_move.held_delta + v_move.debit)
                      AND held_nusd >= -v_move.held_delta;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'The balance does not cover this amount.'
                        USING ERRCODE = 'DF001';
                END IF;
            END IF;
        ELSIF v_move.credit <> 0 THEN
            UPDATE billing_ledgeraccount SET balance_nusd = balance_nusd + v_move.credit
                WHERE id = v_move.id;
        END IF;
    END LOOP;
END;
$$;

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
-- queue there), then everything that does not touch a user account's row, and last the cached
-- balances (df_settle_balances). Without a live hold the wallet's available balance decides the
-- debit, so the user accounts are locked (id order) before it is read.
--
-- p_defer_balances (a batch's items): the cached balances are left to the caller, who sums what
-- each settled item returns in wallet_id, earnings_id and held_delta_nusd and moves each account
-- once (df_settle_apply_batch). An item without a live hold then answers 'flush' with nothing
-- written: its debit depends on the wallet's available balance, so the caller moves what it has
-- summed first and books the item again without deferral.
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
    p_defer_balances boolean DEFAULT false,
    OUT status text,
    OUT cost_nusd bigint,
    OUT buyer_debit_nusd bigint,
    OUT overrun_nusd bigint,
    OUT seller_credit_nusd bigint,
    OUT fee_nusd bigint,
    OUT fee_profile_id bigint,
    OUT fee_bps integer,
    OUT wallet_id bigint,
    OUT earnings_id bigint,
    OUT held_delta_nusd bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_hold billing_hold%ROWTYPE;
    v_done billing_usagerecord%ROWTYPE;
    v_hold_active boolean;
    v_coverable bigint;
    v_overrun_acct bigint;
    v_fee_acct bigint;
    v_txn bigint;
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

    wallet_id := df_account_ensure('wallet', p_buyer_id);
    IF cost_nusd > 0 THEN
        earnings_id := df_account_ensure('earnings', p_seller_id);
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
        IF p_defer_balances THEN
            status := 'flush';
            RETURN;
        END IF;
        PERFORM id FROM billing_ledgeraccount WHERE id IN (wallet_id, earnings_id)
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
            FROM billing_ledgeraccount WHERE id = wallet_id;
    END IF;
    -- billing.pricing.price's split: the buyer pays what is coverable, the rest is overrun.
    buyer_debit_nusd := LEAST(cost_nusd, GREATEST(v_coverable, 0));
    overrun_nusd := cost_nusd - buyer_debit_nusd;
    held_delta_nusd := 0;
    IF v_hold_active THEN
        -- A request's own hold is released whole; a lease by what this request was debited.
        held_delta_nusd := -(CASE WHEN p_lease_id IS NULL THEN v_hold.amount_nusd
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
            FROM (VALUES (1, wallet_id, -buyer_debit_nusd),
                         (2, v_overrun_acct, -overrun_nusd),
                         (3, earnings_id, seller_credit_nusd),
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

    IF NOT p_defer_balances THEN
        PERFORM df_settle_balances(ARRAY[wallet_id], ARRAY[buyer_debit_nusd],
                                   ARRAY[held_delta_nusd], ARRAY[earnings_id],
                                   ARRAY[seller_credit_nusd]);
    END IF;
    status := 'settled';
END;
$$;


-- Items are a jsonb array of objects with df_settle_apply's arguments by name (without the p_
-- prefix). One row per item, numbered from 1 in the array's order (callers ORDER BY item_no).
-- Order (df_settle_apply's, over the whole batch): the hold rows (a request's own, or the lease it
-- drew from) locked by request id; then every account the items may post to created if missing
-- (creating one that a concurrent transaction is creating waits for it, so never after a lock
-- that transaction may want); then the user accounts locked by id. Then the primitive books each
-- item in order, its cached balances deferred: they are moved once per account at the end
-- (df_settle_balances), and before an item that answers 'flush' (no live hold: its debit is what
-- the wallet has available), which is then booked again, not deferred. The one wait left there
-- is on the default fee profile, when an operator deleted it and a concurrent settlement is
-- recreating it; the settlement that recreates it waits on nothing after (it answers 'reprice'),
-- so that wait cannot close a cycle.
CREATE OR REPLACE FUNCTION df_settle_apply_batch(p_items jsonb, p_default_fee_bps integer)
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
    v_booked record;
    v_defer boolean;
    -- The figures of the items booked whose balances are not moved yet (df_settle_balances).
    v_wallets bigint[] := '{}';
    v_debits bigint[] := '{}';
    v_held_deltas bigint[] := '{}';
    v_earnings bigint[] := '{}';
    v_credits bigint[] := '{}';
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
    IF EXISTS (SELECT 1 FROM df_settle_items(p_items) i WHERE i.cost_nusd > 0) THEN
        PERFORM df_platform_account_ensure('overrun');
        PERFORM df_platform_account_ensure('fee_revenue');
    END IF;
    PERFORM a.id FROM billing_ledgeraccount a
        WHERE (a.kind = 'wallet' AND a.user_id IN (SELECT i.buyer_id FROM df_settle_items(p_items) i))
           OR (a.kind = 'earnings' AND a.user_id IN (SELECT i.seller_id FROM df_settle_items(p_items) i))
        ORDER BY a.id FOR NO KEY UPDATE;

    FOR v_item IN SELECT * FROM df_settle_items(p_items) i ORDER BY i.item_no LOOP
        v_defer := true;
        LOOP
            SELECT * INTO v_booked FROM df_settle_apply(
                v_item.request_id, v_item.buyer_id, v_item.access_key_id, v_item.listing_id,
                v_item.seller_id, v_item.model_id, v_item.upstream_model, v_item.price_unit,
                v_item.ask_input_nusd, v_item.ask_output_nusd, v_item.input_units,
                v_item.output_units, v_item.ttft_ms, v_item.duration_ms, v_item.streamed,
                v_item.outcome, v_item.route, v_item.sla_max_ttft_ms, v_item.lease_id,
                v_item.cost_nusd, v_item.fee_nusd, v_item.fee_profile_id, v_item.fee_bps,
                v_item.sla_breached, v_item.sla_waived_nusd, p_default_fee_bps, v_defer);
            EXIT WHEN v_booked.status <> 'flush';
            PERFORM df_settle_balances(v_wallets, v_debits, v_held_deltas, v_earnings, v_credits);
            v_wallets := '{}';
            v_debits := '{}';
            v_held_deltas := '{}';
            v_earnings := '{}';
            v_credits := '{}';
            v_defer := false;
        END LOOP;
        IF v_defer AND v_booked.status = 'settled' THEN
            v_wallets := v_wallets || v_booked.wallet_id;
            v_debits := v_debits || v_booked.buyer_debit_nusd;
            v_held_deltas := v_held_deltas || v_booked.held_delta_nusd;
            v_earnings := v_earnings || v_booked.earnings_id;
            v_credits := v_credits || v_booked.seller_credit_nusd;
        END IF;
        RETURN QUERY SELECT v_item.item_no, v_item.request_id, v_booked.status,
            v_booked.cost_nusd, v_booked.buyer_debit_nusd, v_booked.overrun_nusd,
            v_booked.seller_credit_nusd, v_booked.fee_nusd, v_booked.fee_profile_id,
            v_booked.fee_bps;
    END LOOP;
    PERFORM df_settle_balances(v_wallets, v_debits, v_held_deltas, v_earnings, v_credits);
END;
$$;
"""

BACKWARD = """\
DROP FUNCTION df_settle_apply_batch(jsonb, integer);
DROP FUNCTION df_settle_apply(
    text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,
    integer, integer, boolean, text, jsonb, integer, text, bigint, bigint, bigint, integer,
    boolean, bigint, integer, boolean);
DROP FUNCTION df_settle_balances(bigint[], bigint[], bigint[], bigint[], bigint[]);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    """Back to 0019's primitive (its SETTLE drops and recreates the batch and the items too) and
    0020's batch."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)
        schema_editor.execute(
            import_module("billing.migrations.0019_balance_leases").SETTLE, params=None
        )
        schema_editor.execute(
            import_module("billing.migrations.0020_settle_batch_creates_first").BATCH, params=None
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0020_settle_batch_creates_first")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

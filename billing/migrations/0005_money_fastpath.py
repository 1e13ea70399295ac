"""The money fast path on PostgreSQL: hold, settle and void as one PL/pgSQL call each.

The SQL is frozen here as it shipped (a later change to a function goes in a new migration, so
this one always replays the same); billing.services call the functions on PostgreSQL and keep the
ORM path for SQLite (the embedded default)."""

from django.db import migrations

FORWARD = """\
-- The money fast path (docs/money.md): hold, settle and void as one statement each.
--
-- The same rules as billing/services/holds_orm.py and settlement_orm.py, line by line; the Python
-- services validate their inputs and then call these functions on PostgreSQL. Loaded by migration
-- 0005; to change a function, add a new file and a new migration (this file is history).
--
-- Business outcomes are return values (no exception, so a caller's transaction stays usable);
-- exceptions are broken invariants only, and roll the whole call back.

-- THE rounding rule (billing/money.py): round half up of n / d, in exact integer arithmetic.
-- numeric, because units * price reaches 1e24 (beyond bigint); div() truncates toward zero.
CREATE OR REPLACE FUNCTION df_div_round_half_up(n numeric, d numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN n >= 0 THEN div(2 * n + d, 2 * d) ELSE -div(2 * (-n) + d, 2 * d) END
$$;

-- cost_nusd(units, price per million) = round_half_up(units * price / 1,000,000)
CREATE OR REPLACE FUNCTION df_cost_nusd(units bigint, price_per_million_nusd bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT df_div_round_half_up(units::numeric * price_per_million_nusd, 1000000)::bigint
$$;

-- fee_nusd(cost, bps) = round_half_up(cost * bps / 10,000)
CREATE OR REPLACE FUNCTION df_fee_nusd(cost_nusd bigint, fee_bps integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT df_div_round_half_up(cost_nusd::numeric * fee_bps, 10000)::bigint
$$;


-- Hold: 'placed' | 'exists' (this request id already holds, or held, its funds) | 'insufficient'
-- | 'no_wallet'. The hold row is inserted first (ON CONFLICT DO NOTHING on its unique request
-- id), and only a new row reserves on the wallet, so a duplicate never reserves twice. The
-- reservation is one conditional UPDATE (balance >= held + amount), taken as the last statement
-- so the wallet's row lock is held for the shortest time. A refused reservation deletes the row
-- this call inserted (invisible to everyone else until commit), so nothing is left behind.
CREATE OR REPLACE FUNCTION df_hold_place(
    p_request_id text, p_user_id bigint, p_amount_nusd bigint, p_relaxed_commit boolean
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
    IF p_relaxed_commit THEN
        -- Only when the hold is its own transaction: a hold lost in a crash only means its
        -- settlement charges the available balance instead (docs/money.md).
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    INSERT INTO billing_hold
            (request_id, user_id, account_id, amount_nusd, status, void_reason, created_at)
        VALUES (p_request_id, p_user_id, v_wallet, p_amount_nusd, 'active', '', clock_timestamp())
        ON CONFLICT (request_id) DO NOTHING
        RETURNING id INTO v_hold;
    IF v_hold IS NULL THEN
        RETURN 'exists';
    END IF;
    UPDATE billing_ledgeraccount SET held_nusd = held_nusd + p_amount_nusd
        WHERE id = v_wallet AND balance_nusd >= held_nusd + p_amount_nusd;
    IF NOT FOUND THEN
        DELETE FROM billing_hold WHERE id = v_hold;
        RETURN 'insufficient';
    END IF;
    RETURN 'placed';
END;
$$;


-- Void: 'voided' | 'noop' (settled, voided or unknown request id). Raises if the wallet holds
-- less than the hold (a broken invariant; the ORM path raises BillingError there too).
CREATE OR REPLACE FUNCTION df_hold_void(p_request_id text, p_reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_account bigint;
    v_amount bigint;
BEGIN
    UPDATE billing_hold
        SET status = 'voided', void_reason = left(p_reason, 200), released_at = clock_timestamp()
        WHERE request_id = p_request_id AND status = 'active'
        RETURNING account_id, amount_nusd INTO v_account, v_amount;
    IF NOT FOUND THEN
        RETURN 'noop';
    END IF;
    UPDATE billing_ledgeraccount SET held_nusd = held_nusd - v_amount
        WHERE id = v_account AND held_nusd >= v_amount;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Wallet % holds less than hold %.', v_account, p_request_id
            USING ERRCODE = 'DF002';
    END IF;
    RETURN 'voided';
END;
$$;


-- The user account (wallet or earnings) of a user, created if missing (race-safe: ON CONFLICT on
-- the one_account_per_user index). Looked up first so the common case burns no sequence value.
CREATE OR REPLACE FUNCTION df_account_ensure(p_kind text, p_user_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM billing_ledgeraccount WHERE kind = p_kind AND user_id = p_user_id;
    IF v_id IS NULL THEN
        INSERT INTO billing_ledgeraccount (kind, user_id, balance_nusd, held_nusd, created_at)
            VALUES (p_kind, p_user_id, 0, 0, clock_timestamp())
            ON CONFLICT (kind, user_id) WHERE user_id IS NOT NULL DO NOTHING
            RETURNING id INTO v_id;
        IF v_id IS NULL THEN  -- created concurrently
            SELECT id INTO v_id FROM billing_ledgeraccount
                WHERE kind = p_kind AND user_id = p_user_id;
        END IF;
    END IF;
    RETURN v_id;
END;
$$;

-- The platform's account of a kind, created if missing (one_platform_account index).
CREATE OR REPLACE FUNCTION df_platform_account_ensure(p_kind text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM billing_ledgeraccount WHERE kind = p_kind AND user_id IS NULL;
    IF v_id IS NULL THEN
        INSERT INTO billing_ledgeraccount (kind, user_id, balance_nusd, held_nusd, created_at)
            VALUES (p_kind, NULL, 0, 0, clock_timestamp())
            ON CONFLICT (kind) WHERE user_id IS NULL DO NOTHING
            RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            SELECT id INTO v_id FROM billing_ledgeraccount
                WHERE kind = p_kind AND user_id IS NULL;
        END IF;
    END IF;
    RETURN v_id;
END;
$$;


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

    -- The billing policy: no content delivered and not completed costs nothing.
    IF p_outcome <> 'completed' AND p_output_units = 0 THEN
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
"""

BACKWARD = """
DROP FUNCTION IF EXISTS df_request_settle(
    text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,
    integer, integer, boolean, text, integer);
DROP FUNCTION IF EXISTS df_platform_account_ensure(text);
DROP FUNCTION IF EXISTS df_account_ensure(text, bigint);
DROP FUNCTION IF EXISTS df_hold_void(text, text);
DROP FUNCTION IF EXISTS df_hold_place(text, bigint, bigint, boolean);
DROP FUNCTION IF EXISTS df_fee_nusd(bigint, integer);
DROP FUNCTION IF EXISTS df_cost_nusd(bigint, bigint);
DROP FUNCTION IF EXISTS df_div_round_half_up(numeric, numeric);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_fee_bps_validator")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

"""Batches of the money fast path: many holds, or many settlements, in one PL/pgSQL call.

The functions (frozen here as they shipped) call 0005's single-request
functions, unchanged, so a batch applies exactly their rules."""

from django.db import migrations

FORWARD = """\
-- Batches of the money fast path (docs/money.md, "Batches"): many holds, or many settlements, in
-- one statement, one transaction and one commit.
--
-- Every request still goes through df_hold_place / df_request_settle of 0005, unchanged, so a
-- batch applies exactly the rules of N single calls. What a batch adds is the lock order: it
-- first locks every row its items will lock (hold rows by request id, then ledger accounts by
-- id), so two batches, or a batch and a single call, can never deadlock. Any exception rolls the
-- whole batch back; the caller then retries its items one by one.
--
-- Loaded by migration 0007; to change a function, add a new file and a new migration.

-- Holds: items are a jsonb array of {request_id, user_id, amount_nusd}; one row per item, in
-- order, with df_hold_place's outcome. Committed without waiting for the WAL flush, as single
-- holds are (docs/money.md).
CREATE OR REPLACE FUNCTION df_hold_place_batch(p_items jsonb)
RETURNS TABLE (request_id text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM a.id FROM billing_ledgeraccount a
        WHERE a.kind = 'wallet'
          AND a.user_id IN (SELECT (x ->> 'user_id')::bigint FROM jsonb_array_elements(p_items) x)
        ORDER BY a.id FOR NO KEY UPDATE;
    FOR v_item IN
        SELECT * FROM jsonb_to_recordset(p_items)
            AS x(request_id text, user_id bigint, amount_nusd bigint)
    LOOP
        request_id := v_item.request_id;
        outcome := df_hold_place(v_item.request_id, v_item.user_id, v_item.amount_nusd, false);
        RETURN NEXT;
    END LOOP;
END;
$$;


-- Settlements: items are a jsonb array of objects with df_request_settle's arguments by name
-- (without the p_ prefix); one row per item, in order, with its result.
CREATE OR REPLACE FUNCTION df_request_settle_batch(p_items jsonb, p_default_fee_bps integer)
RETURNS TABLE (
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
    v_item record;
    v_result record;
BEGIN
    PERFORM h.id FROM billing_hold h
        WHERE h.request_id IN (SELECT x ->> 'request_id' FROM jsonb_array_elements(p_items) x)
        ORDER BY h.request_id FOR UPDATE;
    PERFORM a.id FROM billing_ledgeraccount a
        WHERE (a.kind = 'wallet' AND a.user_id IN
                  (SELECT (x ->> 'buyer_id')::bigint FROM jsonb_array_elements(p_items) x))
           OR (a.kind = 'earnings' AND a.user_id IN
                  (SELECT (x ->> 'seller_id')::bigint FROM jsonb_array_elements(p_items) x))
        ORDER BY a.id FOR NO KEY UPDATE;
    FOR v_item IN
        SELECT * FROM jsonb_to_recordset(p_items) AS x(
            request_id text, buyer_id bigint, access_key_id bigint, listing_id bigint,
            seller_id bigint, model_id text, upstream_model text, price_unit text,
            ask_input_nusd bigint, ask_output_nusd bigint, input_units bigint,
            output_units bigint, ttft_ms integer, duration_ms integer, streamed boolean,
            outcome text)
    LOOP
        SELECT * INTO v_result FROM df_request_settle(
            v_item.request_id, v_item.buyer_id, v_item.access_key_id, v_item.listing_id,
            v_item.seller_id, v_item.model_id, v_item.upstream_model, v_item.price_unit,
            v_item.ask_input_nusd, v_item.ask_output_nusd, v_item.input_units,
            v_item.output_units, v_item.ttft_ms, v_item.duration_ms, v_item.streamed,
            v_item.outcome, p_default_fee_bps);
        request_id := v_item.request_id;
        status := v_result.status;
        cost_nusd := v_result.cost_nusd;
        buyer_debit_nusd := v_result.buyer_debit_nusd;
        overrun_nusd := v_result.overrun_nusd;
        seller_credit_nusd := v_result.seller_credit_nusd;
        fee_nusd := v_result.fee_nusd;
        fee_profile_id := v_result.fee_profile_id;
        RETURN NEXT;
    END LOOP;
END;
$$;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS df_request_settle_batch(jsonb, integer);
DROP FUNCTION IF EXISTS df_hold_place_batch(jsonb);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_ledger_truncate_guard")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

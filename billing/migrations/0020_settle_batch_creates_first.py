"""A settlement batch creates every account it may post to before it locks any (0019's
df_settle_apply_batch ensured the wallets and earnings accounts up front, but left the platform
accounts, overrun and fee revenue, to df_settle_apply, after the user accounts were locked).

Creating an account that another transaction is creating waits for that transaction. A single
settlement creates accounts before it updates the user accounts' rows, so a batch that held a
wallet and then waited on the single settlement's new platform account, while that settlement
waited on the wallet, was a deadlock: seen when two event loops' first settlements met on a fresh
database (tests/billing/test_money_batches.py shows it). Now the batch's order is the primitive's:
hold rows, then every account it may post to created, then the user accounts locked by id.
"""

from importlib import import_module

from django.db import migrations

BATCH = """\
-- Items are a jsonb array of objects with df_settle_apply's arguments by name (without the p_
-- prefix). One row per item, numbered from 1 in the array's order (callers ORDER BY item_no).
-- Order (df_settle_apply's, over the whole batch): the hold rows (a request's own, or the lease it
-- drew from) locked by request id; then every account the items may post to created if missing
-- (creating one that a concurrent transaction is creating waits for it, so never after a lock
-- that transaction may want); then the user accounts locked by id. Then the primitive books each
-- item in order. The one wait left there is on the default fee profile, when an operator deleted
-- it and a concurrent settlement is recreating it; the settlement that recreates it waits on
-- nothing after (it answers 'reprice'), so that wait cannot close a cycle.
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


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BATCH, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            import_module("billing.migrations.0019_balance_leases").SETTLE, params=None
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0019_balance_leases")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

"""A gate on each wallet that a Stripe reversal closes while it books, so no new hold lands.

A refund or dispute that takes a wallet below its held amount voids the wallet's active holds
(billing/services/reversals.py). It locks them in the settlements' order, hold rows before the
wallet, so a settlement in progress finishes first. Without a gate, a buyer whose requests kept
arriving could land a new hold, and start settling it, between those two locks every time: the
booking gave up after five tries (CI at 0fbd93e). Now every hold placement passes the wallet's gate
(a shared transaction-level advisory lock) before it touches the wallet, and a reversal closes it
(the exclusive lock) before it locks anything of the wallet: placements wait, settlements do not.

df_hold_place and df_hold_place_batch are 0005's and 0007's with the gate; the batch passes the
gates of all its wallets, in id order, before it locks their rows (so no batch and reversal can
deadlock)."""

from django.db import migrations

GATE = """\
-- A wallet's holds gate: hold placements pass it (shared), a Stripe reversal closes it
-- (exclusive) for the rest of its transaction. Advisory lock class 1145438209 ('DF' 0x4446 0001)
-- holds only these gates; two wallets whose ids agree modulo 2^31 share one (they only wait).
CREATE OR REPLACE FUNCTION df_wallet_holds_gate(p_wallet bigint, p_close boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_close THEN
        PERFORM pg_advisory_xact_lock(1145438209, (p_wallet % 2147483648)::integer);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(1145438209, (p_wallet % 2147483648)::integer);
    END IF;
END;
$$;
"""

PLACE = """\
-- 0005's df_hold_place, passing the wallet's gate before it inserts the hold (whose foreign key
-- already locks the wallet's row).
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
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM df_wallet_holds_gate(v_wallet, false);
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

-- 0007's df_hold_place_batch, passing every wallet's gate (in id order) before locking the rows.
CREATE OR REPLACE FUNCTION df_hold_place_batch(p_items jsonb)
RETURNS TABLE (request_id text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM df_wallet_holds_gate(w.id, false) FROM (
        SELECT a.id FROM billing_ledgeraccount a
            WHERE a.kind = 'wallet'
              AND a.user_id IN (SELECT (x ->> 'user_id')::bigint FROM jsonb_array_elements(p_items) x)
            ORDER BY a.id
    ) w;
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
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GATE + PLACE, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        ungated = PLACE.replace("    PERFORM df_wallet_holds_gate(v_wallet, false);\n", "")
        start = ungated.index("    PERFORM df_wallet_holds_gate(w.id, false)")
        end = ungated.index("    PERFORM a.id FROM billing_ledgeraccount a")
        schema_editor.execute(ungated[:start] + ungated[end:], params=None)
        schema_editor.execute("DROP FUNCTION df_wallet_holds_gate(bigint, boolean);", params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_usage_route_wallet_spent")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]

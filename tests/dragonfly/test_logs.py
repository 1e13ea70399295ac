import logging

from observability.logs import JsonFormatter, RedactSecretsFilter, redact


def test_it_redacts_buyer_keys_and_bearer_tokens():
    text = "auth failed for sk-df-abc123XYZ with Authorization: Bearer sk-live-secret99 api_key=topsecret"
    clean = redact(text)
    assert "abc123XYZ" not in clean
    assert "sk-live-secret99" not in clean
    assert "topsecret" not in clean
    assert clean.count("[redacted]") == 3


def test_it_redacts_personal_api_tokens_wherever_they_appear():
    secret = "df-pat-" + "Ab1" * 13 + "Z"
    clean = redact(f"pasted {secret} into a ticket; token={secret}")
    assert "Ab1Ab1" not in clean
    assert clean == "pasted [redacted] into a ticket; token=[redacted]"


def test_the_filter_redacts_formatted_arguments():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "key %s used", ("sk-df-zzzzzzzz",), None
    )
    RedactSecretsFilter().filter(record)
    assert record.getMessage() == "key [redacted] used"


def test_json_lines_carry_the_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.request_id = "abc"
    assert '"request_id": "abc"' in JsonFormatter().format(record)

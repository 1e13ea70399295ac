"""The /v1/embeddings body: every shape OpenAI takes, and a 400 naming the field for everything else."""

import pytest

from gateway import metering
from gateway.embeddings import EmbeddingsRequest, embeddings_from, size
from gateway.errors import GatewayError

MODEL = "minimax/embo-01"
MINIMAX_ENTRY = {"model_id": MODEL, "provider_slug": "minimax"}
OPENAI_ENTRY = {"model_id": "other/embed", "provider_slug": "other"}


def parsed(**body) -> EmbeddingsRequest:
    return embeddings_from({"model": MODEL, **body})


def refused(body: dict) -> str:
    with pytest.raises(GatewayError) as caught:
        embeddings_from(body)
    assert caught.value.status == 400
    return caught.value.message


def test_a_string_is_one_text_input_with_openais_defaults():
    request = parsed(input="hello")
    assert request == EmbeddingsRequest(
        model=MODEL,
        inputs=["hello"],
        as_tokens=False,
        encoding_format="float",
        dimensions=None,
        user=None,
        input_type="document",
    )
    assert request.stream is False


def test_every_input_shape_openai_takes():
    assert (parsed(input=["a", "b"]).inputs, parsed(input=["a", "b"]).as_tokens) == (
        ["a", "b"],
        False,
    )
    tokens = parsed(input=[1, 2, 3])
    assert (tokens.inputs, tokens.as_tokens) == ([[1, 2, 3]], True)
    arrays = parsed(input=[[0], [5, (1 << 31) - 1]])
    assert (arrays.inputs, arrays.as_tokens) == ([[0], [5, (1 << 31) - 1]], True)


def test_optional_fields_are_read_and_null_means_absent():
    request = parsed(
        input="x", encoding_format="base64", dimensions=1536, user="u-1", input_type="query"
    )
    assert (request.encoding_format, request.dimensions, request.user, request.input_type) == (
        "base64",
        1536,
        "u-1",
        "query",
    )
    nulls = parsed(input="x", encoding_format=None, dimensions=None, user=None, input_type=None)
    assert (nulls.encoding_format, nulls.dimensions, nulls.user, nulls.input_type) == (
        "float",
        None,
        None,
        "document",
    )


SHAPE = "'input' is required: a string, an array of strings, an array of token ids, or an array"
GARBAGE = [
    ({"input": "x"}, "'model' is required and must be a non-empty string"),
    ({"model": "", "input": "x"}, "'model' is required"),
    ({"model": 7, "input": "x"}, "'model' is required"),
    ({"model": ["m"], "input": "x"}, "'model' is required"),
    ({"model": "m" * 257, "input": "x"}, "'model' must be at most 256 characters."),
    ({"model": MODEL}, SHAPE),
    ({"model": MODEL, "input": None}, SHAPE),
    ({"model": MODEL, "input": ""}, "'input' must not be an empty string."),
    ({"model": MODEL, "input": []}, SHAPE),
    ({"model": MODEL, "input": {}}, SHAPE),
    ({"model": MODEL, "input": {"text": "x"}}, SHAPE),
    ({"model": MODEL, "input": 42}, SHAPE),
    ({"model": MODEL, "input": True}, SHAPE),
    ({"model": MODEL, "input": 1.5}, SHAPE),
    ({"model": MODEL, "input": [None]}, SHAPE),
    ({"model": MODEL, "input": [1.5, 2]}, SHAPE),
    ({"model": MODEL, "input": [True, 1]}, SHAPE),
    ({"model": MODEL, "input": [{"text": "x"}]}, SHAPE),
    ({"model": MODEL, "input": ["a", ""]}, "'input[1]' must not be an empty string."),
    ({"model": MODEL, "input": ["a", 3]}, "'input[1]' must be a string, like the other inputs."),
    ({"model": MODEL, "input": ["a", ["b"]]}, "'input[1]' must be a string"),
    ({"model": MODEL, "input": ["a"] * 2049}, "'input' must hold at most 2048 inputs."),
    ({"model": MODEL, "input": [1, "2"]}, "'input' must hold token ids: integers from 0 to"),
    ({"model": MODEL, "input": [1, -1]}, "'input' must hold token ids"),
    ({"model": MODEL, "input": [1, True]}, "'input' must hold token ids"),
    ({"model": MODEL, "input": [1, 2.0]}, "'input' must hold token ids"),
    ({"model": MODEL, "input": [1, 1 << 31]}, "'input' must hold token ids"),
    ({"model": MODEL, "input": [1, [2]]}, "'input' must hold token ids"),
    ({"model": MODEL, "input": [0] * 8193}, "'input' must hold at most 8192 token ids."),
    ({"model": MODEL, "input": [[1], []]}, "'input[1]' must be a non-empty array of token ids."),
    ({"model": MODEL, "input": [[1], "a"]}, "'input[1]' must be a non-empty array of token ids."),
    ({"model": MODEL, "input": [[1], [[2]]]}, "'input[1]' must hold token ids"),
    ({"model": MODEL, "input": [[1], [False]]}, "'input[1]' must hold token ids"),
    ({"model": MODEL, "input": [[0] * 8193]}, "'input[0]' must hold at most 8192 token ids."),
    (
        {"model": MODEL, "input": [[0] * 8000] * 38},
        "'input' must hold at most 300000 token ids in all.",
    ),
    ({"model": MODEL, "input": "x", "encoding_format": "hex"}, "'encoding_format' must be one of"),
    ({"model": MODEL, "input": "x", "encoding_format": 1}, "'encoding_format' must be one of"),
    ({"model": MODEL, "input": "x", "dimensions": 0}, "'dimensions' must be an integer from 1"),
    ({"model": MODEL, "input": "x", "dimensions": -3}, "'dimensions' must be an integer"),
    ({"model": MODEL, "input": "x", "dimensions": 16_385}, "'dimensions' must be an integer"),
    ({"model": MODEL, "input": "x", "dimensions": 1536.0}, "'dimensions' must be an integer"),
    ({"model": MODEL, "input": "x", "dimensions": "1536"}, "'dimensions' must be an integer"),
    ({"model": MODEL, "input": "x", "dimensions": True}, "'dimensions' must be an integer"),
    ({"model": MODEL, "input": "x", "user": 5}, "'user' must be a string of at most 256"),
    ({"model": MODEL, "input": "x", "user": "u" * 257}, "'user' must be a string"),
    ({"model": MODEL, "input": "x", "input_type": "db"}, "'input_type' must be one of document"),
    ({"model": MODEL, "input": "x", "stream": True}, "'stream' is not a field of /v1/embeddings"),
    ({"model": MODEL, "input": "x", "texts": ["x"]}, "'texts' is not a field of /v1/embeddings"),
    ({"model": MODEL, "input": "x", "": 1}, "'' is not a field of /v1/embeddings"),
]


@pytest.mark.parametrize(("body", "message"), GARBAGE)
def test_garbage_is_a_400_naming_the_field(body, message):
    assert refused(body).startswith(message)


def test_a_minimax_model_refuses_token_ids_and_other_dimensions_before_any_hold():
    with pytest.raises(GatewayError) as caught:
        size(parsed(input=[1, 2]), MINIMAX_ENTRY)
    assert caught.value.message == (
        "'input' holds token ids, and 'minimax/embo-01' takes text only: send the text."
    )
    with pytest.raises(GatewayError) as caught:
        size(parsed(input="x", dimensions=256), MINIMAX_ENTRY)
    assert caught.value.message == (
        "'minimax/embo-01' returns 1536-dimensional vectors: 'dimensions' must be 1536 or absent."
    )
    assert size(parsed(input="x", dimensions=1536), MINIMAX_ENTRY).prompt_bound == 1 + 4


def test_an_openai_shaped_model_takes_token_ids_and_any_dimensions():
    meter = size(parsed(input=[[1, 2, 3], [4]], dimensions=256), OPENAI_ENTRY)
    assert (meter.prompt_estimate, meter.prompt_bound) == (4, 4 + 2 * 4)


def test_the_hold_bounds_text_by_its_utf8_bytes_and_markers_and_has_no_output():
    meter = metering.embeddings_meter(parsed(input=["hello world", "你好", "🙂🙂"]))
    assert meter.prompt_bound == 11 + 6 + 8 + 3 * metering.EMBEDDING_INPUT_TOKENS
    assert meter.prompt_estimate == 3 + 1 + 1  # ceil(characters / 4) each
    assert (meter.output_cap, meter.output_allowance, meter.units_estimate) == (0, 0, 5)

"""The JSON Schema of spec files, written once: ``initdiag schema`` prints it for editors and
validators, `validate` enforces it here with messages that name the file, the line and the key, and
the documentation is generated from it."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import did_you_mean, one_line
from .kinds import KINDS, LAYER_KINDS, PADDINGS, where
from .settings import FLAGS

_STRING_NAME = {"type": "string"}


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "initdiag architecture spec",
    "description": "A layer stack (layers) or a PyTorch model (model) to probe, how to probe it, and what "
    "`initdiag check` accepts. Give layers or model, not both.",
    "type": "object",
    "additionalProperties": False,
    "required": ["input_shape"],
    "properties": {
        "name": {"type": "string", "description": "Shown in tables and reports; default: the file name."},
        "description": {"type": "string", "description": "Free text."},
        "model": {
            "type": "string",
            "description": "A PyTorch model instead of layers: PATH.py:FACTORY (relative to this file) or "
            "package.module:FACTORY, a class or function returning an nn.Module (needs initdiag[torch]).",
        },
        "model_args": {
            "type": "object",
            "description": "Keyword arguments the model's factory is called with.",
        },
        "input_shape": {
            "anyOf": [
                {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3},
                {"type": "string", "pattern": "^[0-9x]+$|^(seq|vocab)=[0-9]+,(seq|vocab)=[0-9]+$"},
            ],
            "x-accepts": "[width], [seq, d] or [channels, height, width] of positive integers, or "
            "'seq=64,vocab=1000' (token ids)",
            "description": "Shape of one input sample: [width], e.g. [784], [channels, height, width], e.g. "
            "[3, 32, 32], [seq, d] (a sequence of vectors), or 'seq=64,vocab=1000': token ids (an embedding "
            "first); for a model also '3x32x32'.",
        },
        "init": {
            "type": "object",
            "additionalProperties": False,
            "description": "Per-role initializers of a transformer's weights, over the layers' own and the "
            "defaults (a preset's rule included); see docs/transformers.md.",
            "properties": {
                role: {**_STRING_NAME, "description": text}
                for role, text in (
                    ("embedding", "The token embedding table (vocab, d)."),
                    ("positions", "The learned position table (max_seq, d)."),
                    ("qkv", "Attention's query, key and value projections."),
                    ("q", "Attention's query projection (over qkv)."),
                    ("k", "Attention's key projection (over qkv)."),
                    ("v", "Attention's value projection (over qkv)."),
                    ("out_proj", "Attention's output projection (adds to the stream)."),
                    ("mlp_in", "The MLP's input projection(s) (both halves of a gated MLP)."),
                    ("mlp_out", "The MLP's output projection (adds to the stream)."),
                    ("unembedding", "The unembedding (d, vocab), when not tied."),
                )
            },
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "description": "Values every layer takes unless it sets its own.",
            "properties": {
                "act": {**_STRING_NAME, "description": "Hidden activation, e.g. relu, leaky_relu:0.2, gelu."},
                "out_act": {**_STRING_NAME, "description": "The last layer's activation (default linear)."},
                "init": {**_STRING_NAME, "description": "Weight initializer NAME[:ARGS], e.g. he_normal."},
                "bias_init": {**_STRING_NAME, "description": "Bias initializer (default zeros)."},
            },
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/layer"},
            "description": "The layers, input side first.",
        },
        "probe": {
            "type": "object",
            "additionalProperties": False,
            "description": "How to probe; command-line options override these.",
            "properties": {
                "batch": {"type": "integer", "minimum": 1, "description": "Rows of the random input batch."},
                "seed": {"type": "integer", "minimum": 0, "description": "Root seed."},
                "trials": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Seeds to average over (probe default 1, check default 3).",
                },
                "loss": {
                    "enum": ["unit", "mse", "xent"],
                    "description": "The loss whose gradient is probed.",
                },
                "dtype": {"enum": ["float32", "float64"], "description": "Compute dtype."},
                "input": {
                    "type": "string",
                    "description": "normal, uniform, normal:STD, uniform:low=L,high=H or FILE.npy.",
                },
                "jacobian": {
                    "type": "boolean",
                    "description": "The input-output Jacobian's singular values (default false).",
                },
                "theory": {
                    "type": "boolean",
                    "description": "Mean-field predictions beside the measurement (default true).",
                },
            },
        },
        "check": {
            "type": "object",
            "additionalProperties": False,
            "description": "What `initdiag check` accepts.",
            "properties": {
                "max_forward_gain": {
                    "type": "number",
                    "exclusiveMinimum": 1,
                    "description": "A layer whose cumulative forward gain leaves [1/T, T] is flagged.",
                },
                "max_backward_gain": {
                    "type": "number",
                    "exclusiveMinimum": 1,
                    "description": "The same for the backward gain.",
                },
                "max_dead_fraction": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A layer with more dead units than this share is flagged dead.",
                },
                "max_saturated_fraction": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A layer with more saturated entries than this share is saturated.",
                },
                "max_token_cosine": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A transformer: a row whose tokens' mean pairwise cosine exceeds it is "
                    "flagged collapse (default 0.9).",
                },
                "min_attn_entropy": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A transformer: attention whose entropy, as a share of its maximum, is "
                    "below it is flagged attn_saturated (default 0.1).",
                },
                "max_stream_growth": {
                    "type": "number",
                    "exclusiveMinimum": 1,
                    "description": "A transformer: a block l whose stream's E|x|^2/d exceeds this many times "
                    "l times the first block's is flagged stream_growth (default 2).",
                },
                "allow_symmetric": {
                    "type": "boolean",
                    "description": "Do not fail on symmetric layers (e.g. a deliberate constant init).",
                },
                "fail_on": {
                    "type": "array",
                    "items": {"enum": list(FLAGS)},
                    "uniqueItems": True,
                    "description": "The flags that fail the check (default: all).",
                },
            },
        },
    },
    "$defs": {
        "layer": {
            "type": "object",
            "additionalProperties": False,
            "description": "One layer; which keys a kind takes is listed under each key.",
            "properties": {
                "kind": {"enum": list(LAYER_KINDS), "description": "Layer kind (default dense)."},
                "name": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$",
                    "description": "Layer name (default: a prefix of its kind and a count, dense1, conv2, "
                    "bn1, res1; inside a residual block prefixed by the block's name, res1.dense1).",
                },
                "units": {"type": "integer", "minimum": 1, "description": "dense: output width."},
                "channels": {"type": "integer", "minimum": 1, "description": "conv2d: output channels."},
                "kernel": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1},
                        {
                            "type": "array",
                            "items": {"type": "integer", "minimum": 1},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    ],
                    "description": "conv2d: kernel size, k or [kh, kw] (default 3).",
                },
                "stride": {"type": "integer", "minimum": 1, "description": "conv2d: stride (default 1)."},
                "padding": {
                    "anyOf": [{"enum": list(PADDINGS)}, {"type": "integer", "minimum": 0}],
                    "description": "conv2d: same (default), valid, or zeros on each side.",
                },
                "size": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "maxpool2d: window and stride (default 2).",
                },
                "rate": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMaximum": 1,
                    "description": "dropout: the share of entries zeroed.",
                },
                "eps": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "batchnorm, layernorm, rmsnorm, transformer (its norms): added "
                    "to the variance "
                    "(default 1e-5).",
                },
                "scale": {
                    "type": "number",
                    "description": "residual: the branch's factor, x + scale * branch(x) (default "
                    "1); embedding: "
                    "the table's multiplier (default 1; Vaswani et al.: sqrt(d)).",
                },
                "d": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "embedding: the width of a token vector.",
                },
                "vocab": {
                    "type": "integer",
                    "minimum": 2,
                    "description": "embedding, unembedding: the vocabulary (default: the input's).",
                },
                "positions": {
                    "enum": ["learned", "sinusoidal", "none"],
                    "description": "embedding: positions added to it, a learned table or Vaswani's sines "
                    "(default learned).",
                },
                "max_seq": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "embedding: rows of the learned position table (default: the "
                    "input's seq).",
                },
                "heads": {"type": "integer", "minimum": 1, "description": "attention, transformer: heads."},
                "head_dim": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "attention, transformer: width of a head (default d / heads).",
                },
                "causal": {
                    "type": "boolean",
                    "description": "attention, transformer: each token sees itself and earlier ones "
                    "(default true).",
                },
                "bias": {
                    "type": "boolean",
                    "description": "attention, mlp, transformer: biases (default true); unembedding "
                    "(default false).",
                },
                "qk_norm": {
                    "type": "boolean",
                    "description": "attention, transformer: layer-normalize each head's queries and "
                    "keys (default "
                    "false).",
                },
                "mult": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "mlp, transformer: the hidden width is mult * d (default 4).",
                },
                "hidden": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "mlp, transformer: the hidden width.",
                },
                "norm": {
                    "enum": ["pre", "post", "deepnorm", "none"],
                    "description": "transformer: where the norms are (default pre).",
                },
                "sandwich": {
                    "type": "boolean",
                    "description": "transformer: a norm on each branch's output too, with norm pre "
                    "(default false).",
                },
                "norm_type": {
                    "enum": ["layernorm", "rmsnorm"],
                    "description": "transformer: the norms' kind (default layernorm).",
                },
                "alpha": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "transformer, norm deepnorm: the shortcut's scale (default "
                    "(2N)^(1/4), N blocks).",
                },
                "blocks": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "transformer: how many blocks (default 1).",
                },
                "tied": {
                    "type": "boolean",
                    "description": "unembedding: x @ E^T with the embedding's table (default false).",
                },
                "layers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/layer"},
                    "description": "residual: the branch.",
                },
                "act": {
                    **_STRING_NAME,
                    "description": "dense, conv2d, batchnorm, layernorm, rmsnorm, activation: the "
                    "activation; "
                    "residual: the default of its branch; mlp, transformer: the MLP's (default gelu; swiglu, "
                    "geglu gated).",
                },
                "init": {
                    **_STRING_NAME,
                    "description": "dense, conv2d, embedding, attention, mlp, transformer, unembedding: the "
                    "weight initializer; residual: the default of its branch and the shortcut projection's.",
                },
                "bias_init": {
                    **_STRING_NAME,
                    "description": "dense, conv2d, attention, mlp, transformer, unembedding (residual: its "
                    "branch's default).",
                },
                "repeat": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Repeat this layer N times (names get _1, _2, ... when given).",
                },
            },
            "allOf": [
                {
                    # a layer without kind is dense
                    "if": {
                        "properties": {"kind": {"const": kind}},
                        **({} if kind == "dense" else {"required": ["kind"]}),
                    },
                    "then": {"required": list(info.required)},
                }
                for kind, info in KINDS.items()
                if info.required
            ],
        }
    },
}


def _describe(schema: dict) -> str:
    """What a schema accepts, in words ("a positive integer", "a number in [0, 1]", ...); a schema
    may say it itself in ``x-accepts`` (JSON Schema leaves keywords it does not know alone)."""
    if "x-accepts" in schema:
        return schema["x-accepts"]
    if "anyOf" in schema:
        return " or ".join(_describe(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        low = schema.get("minimum")
        return {1: "a positive integer", 0: "a non-negative integer"}.get(low, "an integer")
    if kind == "number":
        if "exclusiveMinimum" in schema:
            return f"a number greater than {schema['exclusiveMinimum']}"
        if "minimum" in schema and "maximum" in schema:
            return f"a number in [{schema['minimum']}, {schema['maximum']}]"
        if "minimum" in schema and "exclusiveMaximum" in schema:
            return f"a number in [{schema['minimum']}, {schema['exclusiveMaximum']})"
        return "a number"
    if kind == "array":
        items = _describe(schema.get("items", {})).removeprefix("a ").removeprefix("an ") + "s"
        if schema.get("minItems") is not None and schema.get("minItems") == schema.get("maxItems"):
            return f"a list of {schema['minItems']} {items}"
        return "a list of " + items
    return {"string": "a string", "boolean": "true or false", "object": "a table of keys"}.get(
        kind, "a value"
    )


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict}[kind])


def _show(value: Any) -> str:
    """A value as a message quotes it: JSON-like, on one line, cut short when long."""
    if isinstance(value, list | dict) and len(value) > 20:
        return f"a {'list' if isinstance(value, list) else 'table'} of {len(value):,} items"
    text = json.dumps(value) if isinstance(value, str | bool) or value is None else repr(value)
    return one_line(text, 80)


def validate(
    data: Any, schema: dict = SCHEMA, path: tuple = (), root: dict = SCHEMA
) -> list[tuple[tuple, str]]:
    """Every way *data* breaks *schema* (the subset of JSON Schema that SCHEMA uses), as
    (path, message) pairs; an empty list when it conforms."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    name = where(path)
    if "anyOf" in schema:
        if all(validate(data, option, path, root) for option in schema["anyOf"]):
            return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
        return []
    if "const" in schema and data != schema["const"]:
        return [(path, f"{name} must be {_show(schema['const'])}, got {_show(data)}")]
    if "enum" in schema and data not in schema["enum"]:
        return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
    kind = schema.get("type")
    if kind and not _type_ok(data, kind):
        return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
    problems: list[tuple[tuple, str]] = []
    if kind in ("integer", "number"):
        if (
            ("minimum" in schema and data < schema["minimum"])
            or ("exclusiveMinimum" in schema and data <= schema["exclusiveMinimum"])
            or ("maximum" in schema and data > schema["maximum"])
            or ("exclusiveMaximum" in schema and data >= schema["exclusiveMaximum"])
        ):
            problems.append((path, f"{name} must be {_describe(schema)}, got {_show(data)}"))
    elif kind == "string" and "pattern" in schema and not re.match(schema["pattern"], data):
        problems.append(
            (
                path,
                f"{name} must be letters, digits, _ . - (not starting with a digit), got {_show(data)}",
            )
        )
    elif kind == "array":
        if len(data) < schema.get("minItems", 0):
            problems.append(
                (
                    path,
                    f"{name} needs at least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}",
                )
            )
        if len(data) > schema.get("maxItems", len(data)):
            problems.append(
                (
                    path,
                    f"{name} takes at most {schema['maxItems']}, got {len(data)}",
                )
            )
        if schema.get("uniqueItems") and len({json.dumps(v) for v in data}) < len(data):
            problems.append((path, f"{name} lists an item twice"))
        for index, item in enumerate(data):
            problems += validate(item, schema.get("items", {}), (*path, index), root)
    elif kind == "object":
        for rule in schema.get("allOf", []):  # only the if/then form SCHEMA uses
            if not validate(data, {"type": "object", **rule["if"]}, path, root):
                problems += validate(data, {"type": "object", **rule["then"]}, path, root)
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in data:
                problems.append((path, f"{name}: missing key '{key}'" if path else f"missing key '{key}'"))
        for key, value in data.items():
            if key in properties:
                problems += validate(value, properties[key], (*path, key), root)
            elif schema.get("additionalProperties") is False:
                hint = did_you_mean(str(key)[:100], properties) or f"; allowed: {', '.join(properties)}"
                unknown = f"unknown key '{one_line(str(key))}'{hint}"
                problems.append(((*path, key), f"{name}: {unknown}" if path else unknown))
    return problems


def schema_text() -> str:
    return json.dumps(SCHEMA, indent=2) + "\n"

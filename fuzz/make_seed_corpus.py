"""Writes the hand-made seeds of corpus/safetensors/: valid files and one file
per defect the parser must report. Inputs libFuzzer finds are added beside
them (named by their SHA-1). Run from this directory: python3 make_seed_corpus.py
"""
import json
import pathlib
import struct

OUT = pathlib.Path(__file__).parent / "corpus" / "safetensors"


def st(header, data=b"", pad=True):
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


SEEDS = {
    # valid
    "valid_empty_header": st({}),
    "valid_one_f32": st({"a": tensor("F32", [2], 0, 8)}, bytes(range(8))),
    "valid_all_dtypes": st(
        {
            "bf16": tensor("BF16", [2, 2], 0, 8),
            "f16": tensor("F16", [2], 8, 12),
            "f32": tensor("F32", [1], 12, 16),
            "i8": tensor("I8", [4], 16, 20),
            "u8": tensor("U8", [4], 20, 24),
            "i32": tensor("I32", [1], 24, 28),
            "i64": tensor("I64", [1], 28, 36),
            "f8": tensor("F8_E4M3", [4], 36, 40),
        },
        bytes(40),
    ),
    "valid_metadata": st({"__metadata__": {"format": "pt"}, "w": tensor("BF16", [1, 3], 0, 6)}, bytes(6)),
    "valid_zero_sized": st({"z": tensor("F32", [0, 5], 0, 0), "a": tensor("U8", [1], 0, 1)}, b"\x01"),
    "valid_scalar": st({"s": tensor("I64", [], 0, 8)}, bytes(8)),
    "valid_unpadded": st({"a": tensor("U8", [3], 0, 3)}, b"abc", pad=False),
    "valid_unordered_keys": st({"b": tensor("U8", [1], 1, 2), "a": tensor("U8", [1], 0, 1)}, b"xy"),
    # the length prefix
    "bad_empty": b"",
    "bad_truncated_prefix": b"\x10\x00\x00",
    "bad_header_past_eof": struct.pack("<Q", 1000) + b"{}",
    "bad_header_too_large": struct.pack("<Q", 200_000_000) + b"{}",
    "bad_header_length_max": b"\xff" * 8 + b"{}",
    # the JSON
    "bad_invalid_json": st('{"a": {'),
    "bad_trailing_garbage": st("{}}", pad=False),
    "bad_not_object": st("[1,2,3]"),
    "bad_invalid_utf8": struct.pack("<Q", 7) + b'{"\xff":1}',
    "bad_deep_nesting": st("[" * 2000 + "]" * 2000),
    # tensor entries
    "bad_entry_not_object": st({"a": 5}),
    "bad_missing_dtype": st({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"\x00"),
    "bad_missing_shape": st({"a": {"dtype": "U8", "data_offsets": [0, 1]}}, b"\x00"),
    "bad_missing_offsets": st({"a": {"dtype": "U8", "shape": [1]}}, b"\x00"),
    "bad_dtype_type": st({"a": {"dtype": ["U8"], "shape": [1], "data_offsets": [0, 1]}}, b"\x00"),
    "bad_unknown_dtype": st({"a": tensor("F64", [1], 0, 8)}, bytes(8)),
    "bad_negative_dim": st({"a": tensor("U8", [-1], 0, 1)}, b"\x00"),
    "bad_float_dim": st({"a": tensor("U8", [1.0], 0, 1)}, b"\x00"),
    "bad_huge_dim": st('{"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}}', b"\x00"),
    "bad_numel_overflow": st({"a": tensor("BF16", [2**62, 2**62], 0, 0)}),
    "bad_bytes_overflow": st({"a": tensor("I64", [2**62], 0, 0)}),
    "bad_offsets_arity": st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}}, b"\x00"),
    "bad_negative_offset": st({"a": tensor("U8", [0], -1, -1)}),
    "bad_begin_after_end": st({"a": tensor("U8", [0], 4, 0)}, bytes(4)),
    "bad_size_mismatch": st({"a": tensor("BF16", [2, 3], 0, 10)}, bytes(10)),
    "bad_out_of_range": st({"a": tensor("F32", [4], 0, 16)}, bytes(8)),
    "bad_offset_near_max": st({"a": tensor("U8", [1], 2**64 - 1, 2**64)}),
    "bad_overlap": st({"a": tensor("F32", [2], 0, 8), "b": tensor("F32", [2], 4, 12)}, bytes(12)),
    "bad_hole": st({"a": tensor("F32", [1], 0, 4), "b": tensor("F32", [1], 8, 12)}, bytes(12)),
    "bad_hole_at_start": st({"a": tensor("F32", [1], 4, 8)}, bytes(8)),
    "bad_trailing_bytes": st({"a": tensor("F32", [1], 0, 4)}, bytes(6)),
    "bad_metadata_not_object": st({"__metadata__": [1]}),
    "bad_metadata_value": st({"__metadata__": {"k": 1}}),
    "bad_duplicate_key": st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                            '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"),
}

OUT.mkdir(parents=True, exist_ok=True)
for name, data in SEEDS.items():
    (OUT / name).write_bytes(data)
print(f"{len(SEEDS)} seeds in {OUT}")

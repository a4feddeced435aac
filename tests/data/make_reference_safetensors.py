"""Writes reference.safetensors with the reference (Rust) safetensors writer.

The C++ tests read it back and check every value, and check that
SafetensorsWriter reproduces it byte for byte. Regenerate with
`pip install safetensors numpy && python3 make_reference_safetensors.py`.
"""
import pathlib

import numpy as np
from safetensors import serialize
from safetensors._safetensors_rust import TensorSpec


def bf16_bits(values):
    # The values are exact in BF16, so truncating float32 is exact too.
    return (np.array(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


TENSORS = {
    "bf16": ("bfloat16", [2, 3], bf16_bits([0.5, -1.0, 2.0, 3.140625, -0.0078125, 65280.0])),
    "f16": ("float16", [4], np.array([1.0, -2.5, 2.0**-14, 65504.0], dtype=np.float16)),
    "f32": ("float32", [2, 2], np.array([1.5, -2.25, 1e-3, 3.4e38], dtype=np.float32)),
    "i8": ("int8", [5], np.array([-128, -1, 0, 1, 127], dtype=np.int8)),
    "u8": ("uint8", [3], np.array([0, 128, 255], dtype=np.uint8)),
    "i32": ("int32", [2], np.array([-(2**31), 2**31 - 1], dtype=np.int32)),
    "i64": ("int64", [2], np.array([-(2**63), 2**63 - 1], dtype=np.int64)),
    # E4M3 bit patterns: 0, 1.0, -1.0, 448 (the largest finite value).
    "f8": ("float8_e4m3fn", [4], np.array([0x00, 0x38, 0xB8, 0x7E], dtype=np.uint8)),
    "empty": ("float32", [0, 4], np.zeros([0], dtype=np.float32)),
    "scalar": ("float32", [], np.array([42.0], dtype=np.float32)),
}

specs = {
    name: TensorSpec(dtype=dtype, shape=shape, data_ptr=array.ctypes.data, data_len=array.nbytes)
    for name, (dtype, shape, array) in TENSORS.items()
}
data = serialize(specs, metadata={"format": "pt", "source": "safetensors-python"})
pathlib.Path(__file__).with_name("reference.safetensors").write_bytes(data)

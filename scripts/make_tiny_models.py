#!/usr/bin/env python3
"""Writes the tiny test checkpoints of tests/data/models/: one per architecture the
model runner supports, in real Hugging Face layout (config.json + BF16 safetensors).

    llama-tiny   LlamaForCausalLM, GQA 4/2, tied embeddings, llama3 RoPE scaling whose
                 three bands (kept, interpolated, stretched) all occur at head_dim 16
    qwen2-tiny   Qwen2ForCausalLM, GQA 4/2, q/k/v biases, untied lm_head, two shards
                 with model.safetensors.index.json
    bitnet-tiny  BitNetForCausalLM, GQA 4/1, relu2, attn_sub_norm / ffn_sub_norm,
                 ternary linear weights (a power-of-two scale times -1/0/+1), tied

Weights are drawn so that every block matters: embeddings N(0, 0.1²), linears
N(0, 1/K), norms U(0.5, 1.5), biases N(0, 0.3²). Then run scripts/reference_numpy.py
on each directory to write its expected_logits.json.

Usage: pip install numpy safetensors && python3 scripts/make_tiny_models.py [out_dir]
"""
import json
import pathlib
import sys

import numpy as np
from safetensors import serialize
from safetensors._safetensors_rust import TensorSpec

HIDDEN, INTERMEDIATE, LAYERS, HEADS, HEAD_DIM, VOCAB = 64, 96, 2, 4, 16, 128
# Small next to what the layers add to the residual stream: with larger embeddings a
# tied model mostly predicts its own input token, and greedy decoding only repeats it.
EMBED_STD = 0.1


def to_bf16_bits(values):
    """float32 -> BF16 bit patterns, round to nearest even (values are finite)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def config_for(arch, kv_heads, **fields):
    base = {
        "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "bitnet": "BitNetForCausalLM"}[arch]],
        "model_type": arch,
        "torch_dtype": "bfloat16",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": kv_heads,
        "head_dim": HEAD_DIM,
        "vocab_size": VOCAB,
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "use_cache": True,
    }
    base.update(fields)
    return base


def tensors_for(config, rng):
    """name -> float32 array, in the order Hugging Face writes them."""
    arch = config["model_type"]
    kv = config["num_key_value_heads"] * HEAD_DIM
    q = HEADS * HEAD_DIM
    ternary = arch == "bitnet"

    def linear(n, k):
        if ternary:
            return rng.choice([-1.0, 0.0, 1.0], size=(n, k), p=[0.3, 0.4, 0.3]) * 0.125
        return rng.normal(0.0, 1.0 / np.sqrt(k), size=(n, k))

    def norm(n):
        return rng.uniform(0.5, 1.5, size=n)

    t = {"model.embed_tokens.weight": rng.normal(0.0, EMBED_STD, size=(VOCAB, HIDDEN))}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(HIDDEN)
        for name, (n, k) in {"q": (q, HIDDEN), "k": (kv, HIDDEN), "v": (kv, HIDDEN),
                             "o": (HIDDEN, q)}.items():
            t[p + f"self_attn.{name}_proj.weight"] = linear(n, k)
            if arch == "qwen2" and name != "o":
                t[p + f"self_attn.{name}_proj.bias"] = rng.normal(0.0, 0.3, size=n)
        if arch == "bitnet":
            t[p + "self_attn.attn_sub_norm.weight"] = norm(HIDDEN)
        t[p + "post_attention_layernorm.weight"] = norm(HIDDEN)
        t[p + "mlp.gate_proj.weight"] = linear(INTERMEDIATE, HIDDEN)
        t[p + "mlp.up_proj.weight"] = linear(INTERMEDIATE, HIDDEN)
        t[p + "mlp.down_proj.weight"] = linear(HIDDEN, INTERMEDIATE)
        if arch == "bitnet":
            t[p + "mlp.ffn_sub_norm.weight"] = norm(INTERMEDIATE)
    t["model.norm.weight"] = norm(HIDDEN)
    if not config["tie_word_embeddings"]:
        t["lm_head.weight"] = rng.normal(0.0, 1.0, size=(VOCAB, HIDDEN))
    return t


def safetensors_bytes(tensors):
    bits = {name: to_bf16_bits(array) for name, array in tensors.items()}
    specs = {name: TensorSpec(dtype="bfloat16", shape=list(tensors[name].shape),
                              data_ptr=b.ctypes.data, data_len=b.nbytes)
             for name, b in bits.items()}
    return serialize(specs, metadata={"format": "pt"})


def write_checkpoint(out, config, tensors, shards):
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    names = list(tensors)
    if shards == 1:
        (out / "model.safetensors").write_bytes(safetensors_bytes(tensors))
        return
    weight_map, total = {}, 0
    per_shard = -(-len(names) // shards)
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s * per_shard:(s + 1) * per_shard]}
        (out / file).write_bytes(safetensors_bytes(part))
        weight_map.update({n: file for n in part})
        total += sum(2 * a.size for a in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


MODELS = {
    "llama-tiny": (config_for(
        "llama", 2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        hidden_act="silu", tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=1, eos_token_id=2), 1, 101),
    "qwen2-tiny": (config_for(
        "qwen2", 2, max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=1000000.0,
        rope_scaling=None, hidden_act="silu", tie_word_embeddings=False,
        use_sliding_window=False, sliding_window=512, max_window_layers=LAYERS,
        bos_token_id=1, eos_token_id=2), 2, 202),
    "bitnet-tiny": (config_for(
        "bitnet", 1, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
        hidden_act="relu2", tie_word_embeddings=True, attention_bias=False,
        bos_token_id=1, eos_token_id=2), 1, 303),
}


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                        pathlib.Path(__file__).resolve().parent.parent / "tests/data/models")
    for name, (config, shards, seed) in MODELS.items():
        tensors = tensors_for(config, np.random.default_rng(seed))
        write_checkpoint(root / name, config, tensors, shards)
        print(f"{root / name}: {len(tensors)} tensors, {shards} file(s)")


if __name__ == "__main__":
    main()

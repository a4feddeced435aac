#!/usr/bin/env python3
"""An independent numpy forward of LlamaForCausalLM, Qwen2ForCausalLM and
BitNetForCausalLM, written from Hugging Face transformers' modeling_llama.py,
modeling_qwen2.py, modeling_bitnet.py and modeling_rope_utils.py (not from the C++
reference). float32 throughout, like the PyTorch modules run in float32; no KV cache:
every greedy step recomputes the whole sequence.

It loads a checkpoint directory (config.json + model.safetensors or a sharded
model.safetensors.index.json) and writes expected_logits.json beside it:
    prompts          the fixed prompts (token ids)
    last_logits      [prompt][vocab]: logits at each prompt's last position
    sequence_logits  [position][vocab]: every position of prompts[sequence_prompt]
    greedy_tokens    [prompt][max_new]: greedy continuation (argmax, first on ties)
    greedy_min_margin  the smallest top-1 minus top-2 logit met while generating

Usage: pip install numpy safetensors && python3 scripts/reference_numpy.py <checkpoint_dir>...
"""
import json
import math
import pathlib
import sys

import numpy as np
from safetensors import deserialize

PROMPTS = [
    [1, 17, 42, 99, 5, 63, 120],
    [3, 3, 3],
    [77],
    [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110],
]
SEQUENCE_PROMPT = 3
MAX_NEW = 8
# The C++ and numpy logits differ by ~1e-6 of their scale: a greedy step closer than
# this to a tie could go either way, so such a checkpoint is rejected here.
MIN_GREEDY_MARGIN = 1e-3

NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16}


# ---- loading ----------------------------------------------------------------------------

def widen(dtype, shape, data):
    if dtype == "BF16":  # numpy has no bfloat16: the high half of a float32
        bits = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(data, dtype=NUMPY_DTYPES[dtype]).astype(np.float32).reshape(shape)


def load_checkpoint(directory):
    directory = pathlib.Path(directory)
    config = json.loads((directory / "config.json").read_text())
    index = directory / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
             if index.exists() else ["model.safetensors"])
    weights = {}
    for file in files:
        for name, t in deserialize((directory / file).read_bytes()):
            weights[name] = widen(t["dtype"], t["shape"], t["data"])
    return config, weights


# ---- modeling_*.py, in numpy ------------------------------------------------------------

class Model:
    def __init__(self, config, weights):
        arch = config["architectures"][0]
        assert arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "BitNetForCausalLM"), arch
        self.bitnet = arch == "BitNetForCausalLM"
        self.c = config
        self.w = weights
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or config["hidden_size"] // self.heads
        self.eps = config["rms_norm_eps"]
        self.act = {"silu": silu, "relu2": relu2}[config["hidden_act"]]
        self.inv_freq = rope_init(config, self.head_dim)
        self.lm_head = weights["model.embed_tokens.weight" if config.get("tie_word_embeddings")
                               else "lm_head.weight"]

    def linear(self, x, name):
        """nn.Linear: x @ W.T + b."""
        y = x @ self.w[name + ".weight"].T
        bias = self.w.get(name + ".bias")
        return y + bias if bias is not None else y

    def rms_norm(self, x, name):
        variance = np.mean(np.square(x), axis=-1, keepdims=True)
        return self.w[name + ".weight"] * (x / np.sqrt(variance + np.float32(self.eps)))

    def attention(self, x, p, cos, sin):
        seq = x.shape[0]
        # [seq, heads, head_dim] -> [heads, seq, head_dim]
        q = self.linear(x, p + "q_proj").reshape(seq, -1, self.head_dim).transpose(1, 0, 2)
        k = self.linear(x, p + "k_proj").reshape(seq, -1, self.head_dim).transpose(1, 0, 2)
        v = self.linear(x, p + "v_proj").reshape(seq, -1, self.head_dim).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        k = np.repeat(k, groups, axis=0)  # repeat_kv: kv head j serves q heads j*groups ...
        v = np.repeat(v, groups, axis=0)
        scores = (q @ k.transpose(0, 2, 1)) * np.float32(self.head_dim ** -0.5)
        future = np.triu(np.ones((seq, seq), dtype=bool), k=1)
        scores = np.where(future, np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        out = (probs @ v).transpose(1, 0, 2).reshape(seq, -1)
        if self.bitnet:
            out = self.rms_norm(out, p + "attn_sub_norm")
        return self.linear(out, p + "o_proj")

    def mlp(self, x, p):
        h = self.act(self.linear(x, p + "gate_proj")) * self.linear(x, p + "up_proj")
        if self.bitnet:
            h = self.rms_norm(h, p + "ffn_sub_norm")
        return self.linear(h, p + "down_proj")

    def forward(self, tokens):
        """Logits [len(tokens), vocab] of one sequence from position 0."""
        x = self.w["model.embed_tokens.weight"][np.asarray(tokens)]
        positions = np.arange(len(tokens)).astype(np.float32)
        freqs = positions[:, None] * self.inv_freq[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb), np.sin(emb)
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = x + self.attention(self.rms_norm(x, p + "input_layernorm"), p + "self_attn.",
                                   cos, sin)
            x = x + self.mlp(self.rms_norm(x, p + "post_attention_layernorm"), p + "mlp.")
        x = self.rms_norm(x, "model.norm")
        return x @ self.lm_head.T


def silu(x):
    return x / (np.float32(1) + np.exp(-x))


def relu2(x):
    return np.square(np.maximum(x, np.float32(0)))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope_init(config, dim):
    """_compute_default_rope_parameters, then _compute_llama3_parameters if asked."""
    base = config.get("rope_theta", 10000.0)
    inv_freq = np.float32(1.0) / (np.float32(base) **
                                  (np.arange(0, dim, 2).astype(np.float32) / np.float32(dim)))
    scaling = config.get("rope_scaling")
    if not scaling:
        return inv_freq
    rope_type = scaling.get("rope_type", scaling.get("type"))
    assert rope_type == "llama3", rope_type
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = np.float32(2 * math.pi) / inv_freq
    inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / np.float32(factor), inv_freq)
    smooth_factor = ((np.float32(old_context_len) / wavelen - np.float32(low_freq_factor)) /
                     np.float32(high_freq_factor - low_freq_factor))
    smoothed = ((np.float32(1) - smooth_factor) * inv_freq_llama / np.float32(factor) +
                smooth_factor * inv_freq_llama)
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, inv_freq_llama).astype(np.float32)


# ---- expected_logits.json ---------------------------------------------------------------

def greedy(model, prompt):
    tokens, margin = list(prompt), math.inf
    for _ in range(MAX_NEW):
        last = model.forward(tokens)[-1]
        top2 = np.sort(last)[-2:]
        margin = min(margin, float(top2[1] - top2[0]))
        tokens.append(int(np.argmax(last)))
    return tokens[len(prompt):], margin


def float32_list(array):
    # 9 significant digits round-trip a float32 exactly.
    return [float(f"{v:.9g}") for v in np.asarray(array, dtype=np.float32).ravel()]


def write_expected(directory):
    config, weights = load_checkpoint(directory)
    model = Model(config, weights)
    greedy_runs = [greedy(model, p) for p in PROMPTS]
    margin = min(m for _, m in greedy_runs)
    if margin < MIN_GREEDY_MARGIN:
        raise SystemExit(f"{directory}: greedy margin {margin} < {MIN_GREEDY_MARGIN}, pick "
                         "other prompts or weights")
    expected = {
        "generator": "scripts/reference_numpy.py",
        "architecture": config["architectures"][0],
        "prompts": PROMPTS,
        "last_logits": [float32_list(model.forward(p)[-1]) for p in PROMPTS],
        "sequence_prompt": SEQUENCE_PROMPT,
        "sequence_logits": [float32_list(row) for row in model.forward(PROMPTS[SEQUENCE_PROMPT])],
        "greedy_max_new": MAX_NEW,
        "greedy_tokens": [tokens for tokens, _ in greedy_runs],
        "greedy_min_margin": margin,
        "inv_freq": float32_list(model.inv_freq),
    }
    out = pathlib.Path(directory) / "expected_logits.json"
    out.write_text(json.dumps(expected) + "\n")
    print(f"{out}: greedy margin {margin:.4g}, logits scale "
          f"{np.abs(np.array(expected['last_logits'])).max():.3g}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for d in sys.argv[1:]:
        write_expected(d)

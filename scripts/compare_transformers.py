#!/usr/bin/env python3
"""Greedy tokens and prefill logits of `slidesparse run --gpu --dtype bf16` against
transformers on tiny random Llama and Qwen2 models (run on the GPU machine; needs torch and
transformers). Exits 1 on a mismatch. Usage: compare_transformers.py [build-gpu/slidesparse]"""
import os, subprocess, sys, tempfile

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build-gpu/slidesparse"
PROMPT = [1, 17, 300, 42, 7, 99, 250, 3]
STEPS = 32
LOGITS_TOLERANCE = 3e-2  # relative L2: BF16 GPU kernels vs transformers' BF16 eager forward
DIMS = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=64, vocab_size=512, max_position_embeddings=256,
            torch_dtype="bfloat16")


def check(name, config, cls, folder):
    torch.manual_seed(0)
    model = cls(config).to(torch.bfloat16)
    with torch.no_grad():  # larger weights than the 0.02 default: fewer near-ties in argmax
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    model = model.cuda().eval()
    ids = torch.tensor([PROMPT], device="cuda")
    with torch.no_grad():
        want_logits = model(ids).logits[0, -1].float().cpu().numpy()
        out = model.generate(ids, max_new_tokens=STEPS, do_sample=False, min_new_tokens=STEPS,
                             pad_token_id=0, eos_token_id=None)
    want = out[0, len(PROMPT):].tolist()
    logits_file = os.path.join(folder, "logits.f32")
    run = subprocess.run([BINARY, "run", folder, "--gpu", "--dtype", "bf16", "--prompt-ids",
                          ",".join(map(str, PROMPT)), "--max-new", str(STEPS), "--logits-out",
                          logits_file], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{name}: slidesparse failed:\n{run.stderr}")
        return False
    got = [int(t) for t in run.stdout.split()]
    got_logits = np.fromfile(logits_file, dtype=np.float32)
    rel = float(np.linalg.norm(got_logits - want_logits) / np.linalg.norm(want_logits))
    same = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), len(want))
    ok = rel <= LOGITS_TOLERANCE and same == len(want)
    print(f"{name}: prefill logits relative L2 {rel:.2e} (<= {LOGITS_TOLERANCE}); greedy tokens "
          f"equal for {same}/{STEPS} steps -> {'OK' if ok else 'MISMATCH'}")
    if same < len(want):
        print(f"  slidesparse:  {got}\n  transformers: {want}")
    return ok


def main():
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(check("llama", LlamaConfig(**DIMS, rope_theta=10000.0),
                             LlamaForCausalLM, os.path.join(tmp, "llama")))
        results.append(check("qwen2", Qwen2Config(**DIMS, rope_theta=1000000.0),
                             Qwen2ForCausalLM, os.path.join(tmp, "qwen2")))
    print("all OK" if all(results) else "MISMATCH")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

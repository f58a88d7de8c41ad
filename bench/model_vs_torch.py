#!/usr/bin/env python3
"""Training-step throughput of Murmur's CPU model vs the PyTorch reference.

Both run forward + backward + AdamW (with clipping) of the same GPT-2 config,
batch, context and thread count on this machine; each side reports the median
ms/step of its timed steps, the whole comparison is repeated and the medians
of the repeats are compared. Prints one JSON object.

  bench/model_vs_torch.py --preset small --batch 8 --context 256 --threads 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import torch  # noqa: E402

import gpt2_ref  # noqa: E402

PRESETS = {  # keep in sync with model/config.cpp
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=256),
    "small": dict(n_layer=4, n_head=4, n_embd=256, n_positions=256, vocab_size=256),
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),
}


def torch_ms_per_step(cfg, B, T, threads, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    P = {n: (0.02 * torch.randn(shape)).requires_grad_(True) for n, shape in gpt2_ref.param_shapes(cfg).items()}
    opt = torch.optim.AdamW(list(P.values()), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    idx = torch.randint(0, cfg["vocab_size"], (B, T))
    tgt = torch.randint(0, cfg["vocab_size"], (B, T))
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = gpt2_ref.forward(P, cfg, idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def murmur_ms_per_step(binary, preset, B, T, threads, steps, warmup):
    out = subprocess.run([binary, "bench", "model", "--preset", preset, "--batch", str(B), "--context", str(T),
                          "--threads", str(threads), "--steps", str(steps), "--warmup", str(warmup), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ms_per_step"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=0, help="0 = the preset's n_ctx")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "build", "murmur"))
    a = ap.parse_args()
    cfg = PRESETS[a.preset]
    T = a.context or cfg["n_positions"]
    tokens = a.batch * T
    mm, tt = [], []
    for _ in range(a.repeats):  # alternate so drifts in machine load hit both sides alike
        mm.append(murmur_ms_per_step(a.binary, a.preset, a.batch, T, a.threads, a.steps, a.warmup))
        tt.append(torch_ms_per_step(cfg, a.batch, T, a.threads, a.steps, a.warmup))
    m, t = statistics.median(mm), statistics.median(tt)
    C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    params = V * C + cfg["n_positions"] * C + L * (12 * C * C + 13 * C) + 2 * C
    flops_per_token = 6 * params + 12 * L * C * T
    print(json.dumps({
        "preset": a.preset, "batch": a.batch, "context": T, "threads": a.threads, "repeats": a.repeats,
        "torch_version": torch.__version__,
        "murmur": {"ms_per_step": m, "tokens_per_s": tokens / m * 1e3, "gflops": tokens / m * 1e3 * flops_per_token / 1e9,
                   "runs_ms": mm},
        "torch": {"ms_per_step": t, "tokens_per_s": tokens / t * 1e3, "gflops": tokens / t * 1e3 * flops_per_token / 1e9,
                  "runs_ms": tt},
        "speedup_vs_torch": t / m,
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GPU training-step throughput: Murmur's CUDA backend vs PyTorch eager and torch.compile.

All three run forward + backward + global-norm clipping + AdamW of the same GPT-2
config (default gpt2-124m, T=1024) in bf16 mixed precision (fp32 master weights) on
random tokens, with the vocabulary padded to 50304 as Murmur pads it. Each side runs
in its own process so peak memory is comparable: sampled with nvidia-smi for every
side (CUDA context included), plus PyTorch's own allocator peak. MFU uses the
training FLOPs per token of model/config.h (6 per weight + 12*L*C*T) over the GPU's
dense bf16 peak. Prints one JSON object.

  bench/model_cuda_vs_torch.py --batch 16
  bench/model_cuda_vs_torch.py --batch 16 --peak-tflops 989.4 --skip compile
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PRESETS = {  # keep in sync with model/config.cpp
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=256),
    "small": dict(n_layer=4, n_head=4, n_embd=256, n_positions=256, vocab_size=256),
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),
}
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H200": 989.4, "A100": 312.0, "L40S": 362.0}


def padded_vocab(v):
    return (v + 127) // 128 * 128


def flops_per_token(cfg, T):
    C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    params = V * C + cfg["n_positions"] * C + L * (12 * C * C + 13 * C) + 2 * C
    return 6 * params + 12 * L * C * T


def fail(msg, code=2):
    print(json.dumps({"error": msg}))
    print(f"model_cuda_vs_torch: {msg}", file=sys.stderr)
    sys.exit(code)


def gpu_info():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             check=True, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"nvidia-smi failed ({e}): no NVIDIA GPU or driver visible"
    if not out:
        return None, "nvidia-smi lists no GPU"
    name, driver, mem = (s.strip() for s in out[0].split(","))
    return {"name": name, "driver": driver, "memory": mem}, None


class PeakMemory:
    """Samples nvidia-smi every 0.1 s; the peak MiB used by process `pid`."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                     timeout=10).stdout
                for line in out.splitlines():
                    pid, mib = (s.strip() for s in line.split(","))
                    if pid.isdigit() and int(pid) == self.pid and mib.isdigit():
                        self.peak = max(self.peak, int(mib))
            except (OSError, subprocess.SubprocessError, ValueError):
                pass
            self._stop.wait(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak or None


def run_measured(cmd, env=None):
    """Runs cmd, returns (stdout, stderr, returncode, peak MiB by nvidia-smi)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    mem = PeakMemory(p.pid)
    out, err = p.communicate()
    return out, err, p.returncode, mem.stop()


# ---- PyTorch side (runs in a child process: --worker eager|compile) -------------------

def torch_worker(a):
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        fail("torch.cuda.is_available() is false in the PyTorch worker")
    cfg = PRESETS[a.preset]
    B, T = a.batch, a.context
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    Vp = padded_vocab(cfg["vocab_size"])
    dev = "cuda"
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True

    def p(*shape, std=0.02):
        return (std * torch.randn(*shape, device=dev)).requires_grad_(True)

    P = {"wte": p(Vp, C), "wpe": p(cfg["n_positions"], C), "lnf_w": torch.ones(C, device=dev, requires_grad=True),
         "lnf_b": torch.zeros(C, device=dev, requires_grad=True)}
    for i in range(L):
        P.update({f"{i}.ln1_w": torch.ones(C, device=dev, requires_grad=True), f"{i}.ln1_b": p(C, std=0),
                  f"{i}.qkv_w": p(C, 3 * C), f"{i}.qkv_b": p(3 * C, std=0), f"{i}.proj_w": p(C, C),
                  f"{i}.proj_b": p(C, std=0), f"{i}.ln2_w": torch.ones(C, device=dev, requires_grad=True),
                  f"{i}.ln2_b": p(C, std=0), f"{i}.fc_w": p(C, 4 * C), f"{i}.fc_b": p(4 * C, std=0),
                  f"{i}.fcp_w": p(4 * C, C), f"{i}.fcp_b": p(C, std=0)})

    def model(idx, tgt):
        x = P["wte"][idx] + P["wpe"][:T]
        for i in range(L):
            h = F.layer_norm(x, (C,), P[f"{i}.ln1_w"], P[f"{i}.ln1_b"], 1e-5)
            q, k, v = (h @ P[f"{i}.qkv_w"] + P[f"{i}.qkv_b"]).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + y @ P[f"{i}.proj_w"] + P[f"{i}.proj_b"]
            h = F.layer_norm(x, (C,), P[f"{i}.ln2_w"], P[f"{i}.ln2_b"], 1e-5)
            h = F.gelu(h @ P[f"{i}.fc_w"] + P[f"{i}.fc_b"], approximate="tanh")
            x = x + h @ P[f"{i}.fcp_w"] + P[f"{i}.fcp_b"]
        x = F.layer_norm(x, (C,), P["lnf_w"], P["lnf_b"], 1e-5)
        logits = x @ P["wte"].t()
        return F.cross_entropy(logits.view(B * T, Vp).float(), tgt.view(-1))

    step_fn = torch.compile(model) if a.worker == "compile" else model
    decay = [t for n, t in P.items() if n.endswith(("_w", "wte", "wpe")) and "ln" not in n]
    other = [t for n, t in P.items() if not any(t is d for d in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    idx = torch.randint(0, cfg["vocab_size"], (B, T), device=dev)
    tgt = torch.randint(0, cfg["vocab_size"], (B, T), device=dev)
    times = []
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        torch.cuda.synchronize()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"ms_per_step": statistics.median(times), "ms_per_step_min": min(times),
                      "ms_per_step_max": max(times), "loss": loss.item(), "torch_version": torch.__version__,
                      "allocator_peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                      "reserved_peak_mib": torch.cuda.max_memory_reserved() / 2**20}))


# ---- driver ---------------------------------------------------------------------------

def summarise(ms, tokens, fpt, peak_tflops):
    tok_s = tokens / ms * 1e3
    return {"ms_per_step": ms, "tokens_per_s": tok_s, "tflops": tok_s * fpt / 1e12,
            "mfu": tok_s * fpt / (peak_tflops * 1e12) if peak_tflops else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="gpt2-124m", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=0, help="0 = the preset's n_ctx")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="dense bf16 peak (default: from the GPU name)")
    ap.add_argument("--skip", action="append", default=[], choices=["murmur", "eager", "compile"])
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "build", "murmur"))
    ap.add_argument("--worker", choices=["eager", "compile"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    cfg = PRESETS[a.preset]
    a.context = a.context or cfg["n_positions"]
    if a.worker:
        return torch_worker(a)

    gpu, why = gpu_info()
    if gpu is None:
        fail(why + "; this benchmark needs a CUDA GPU (run it on the GPU host)")
    peak = a.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu["name"]), 0.0)
    fpt = flops_per_token(cfg, a.context)
    tokens = a.batch * a.context
    result = {"preset": a.preset, "batch": a.batch, "context": a.context, "steps": a.steps, "warmup": a.warmup,
              "gpu": gpu, "peak_bf16_tflops": peak or None, "flops_per_token": fpt, "padded_vocab": True}

    if "murmur" not in a.skip:
        env = dict(os.environ, MURMUR_CUDA_PRECISION="bf16")
        out, err, rc, mib = run_measured([a.binary, "bench", "model", "--device", "cuda", "--preset", a.preset,
                                          "--batch", str(a.batch), "--context", str(a.context), "--steps",
                                          str(a.steps), "--warmup", str(a.warmup), "--json"], env)
        if rc != 0:
            result["murmur"] = {"error": (err or out).strip()[-2000:]}
        else:
            j = json.loads(out)
            result["murmur"] = dict(summarise(j["ms_per_step"], tokens, fpt, peak), peak_mib_nvidia_smi=mib,
                                    ms_per_step_min=j["ms_per_step_min"], ms_per_step_max=j["ms_per_step_max"])
    for mode in ("eager", "compile"):
        if mode in a.skip:
            continue
        out, err, rc, mib = run_measured([sys.executable, __file__, "--worker", mode, "--preset", a.preset,
                                          "--batch", str(a.batch), "--context", str(a.context), "--steps",
                                          str(a.steps), "--warmup", str(a.warmup)])
        if rc != 0:
            result["torch_" + mode] = {"error": (err or out).strip()[-2000:]}
            continue
        j = json.loads(out.strip().splitlines()[-1])
        result["torch_version"] = j["torch_version"]
        result["torch_" + mode] = dict(summarise(j["ms_per_step"], tokens, fpt, peak), peak_mib_nvidia_smi=mib,
                                       allocator_peak_mib=j["allocator_peak_mib"],
                                       reserved_peak_mib=j["reserved_peak_mib"], loss=j["loss"])
    m = result.get("murmur", {})
    for mode in ("eager", "compile"):
        t = result.get("torch_" + mode, {})
        if "ms_per_step" in m and "ms_per_step" in t:
            result["speedup_vs_torch_" + mode] = t["ms_per_step"] / m["ms_per_step"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()

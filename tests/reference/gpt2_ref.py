#!/usr/bin/env python3
"""PyTorch reference GPT-2 for Murmur's correctness tests (tests only; Debian's python3-torch).

Parameters use Hugging Face GPT-2 names and shapes (Conv1D weights are (in, out)),
so the same code reads Murmur checkpoints. Attention is written out (PyTorch 1.13
has no scaled_dot_product_attention).

  gpt2_ref.py golden --out FILE      tiny-config golden data: logits, loss, grads, 10 AdamW steps
  gpt2_ref.py loss --checkpoint DIR --tokens FILE
                                     loss of a checkpoint on (inputs, targets) from a safetensors file
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def param_names(n_layer):
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        names += [p + s for s in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]
    return names + ["transformer.ln_f.weight", "transformer.ln_f.bias"]


def param_shapes(cfg):
    """{name: shape} in Murmur's layout order, HF shapes (Conv1D weights are (in, out))."""
    C, V = cfg["n_embd"], cfg["vocab_size"]
    by_suffix = {"wte.weight": (V, C), "wpe.weight": (cfg["n_positions"], C), "c_attn.weight": (C, 3 * C),
                 "c_attn.bias": (3 * C,), "attn.c_proj.weight": (C, C), "c_fc.weight": (C, 4 * C),
                 "c_fc.bias": (4 * C,), "mlp.c_proj.weight": (4 * C, C)}
    return {n: next((s for k, s in by_suffix.items() if n.endswith(k)), (C,)) for n in param_names(cfg["n_layer"])}


def decays(name):
    """Weight decay applies to the embeddings and the matrices, as in Murmur."""
    return name.endswith(".weight") and ("wte" in name or "wpe" in name or "attn.c_" in name or "mlp.c_" in name)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def forward(P, cfg, idx, targets=None):
    """idx, targets: (B, T) int64. Returns (logits (B, T, V), mean loss or None)."""
    B, T = idx.shape
    C, NH = cfg["n_embd"], cfg["n_head"]
    hs = C // NH
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        h = torch.nn.functional.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], 1e-5)
        qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        h = torch.nn.functional.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], 1e-5)
        h = gelu_new(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"])
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    x = torch.nn.functional.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], 1e-5)
    logits = x @ P["transformer.wte.weight"].t()
    loss = None
    if targets is not None:
        loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
    return logits, loss


def golden(out):
    # The tiny preset: L=2, H=2, C=32, n_ctx=64, V=256.
    cfg = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 256}
    g = torch.Generator().manual_seed(1234)
    P = {}
    for name, shp in param_shapes(cfg).items():
        # Non-trivial values everywhere (LayerNorm and biases included) so every gradient path is exercised.
        if "ln_" in name and name.endswith("weight"):
            t = 1.0 + 0.1 * torch.randn(shp, generator=g)
        else:
            t = 0.1 * torch.randn(shp, generator=g)
        P[name] = t.requires_grad_(True)
    B, T, steps = 4, 32, 10
    batches = [(torch.randint(0, cfg["vocab_size"], (B, T), generator=g),
                torch.randint(0, cfg["vocab_size"], (B, T), generator=g)) for _ in range(steps)]
    result = {k: v.detach().clone() for k, v in P.items()}
    idx, tgt = batches[0]
    logits, loss = forward(P, cfg, idx, tgt)
    loss.backward()
    result["logits"] = logits.detach()
    result["loss"] = loss.detach().reshape(1)
    for k, v in P.items():
        result["grad." + k] = v.grad.detach().clone()
        v.grad = None
    # 10 AdamW steps with clipping: the loss of each step's batch before its update.
    lr, wd, clip = 1e-2, 0.1, 1.0
    groups = [{"params": [P[n] for n in P if decays(n)], "weight_decay": wd},
              {"params": [P[n] for n in P if not decays(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for idx, tgt in batches:
        opt.zero_grad()
        _, loss = forward(P, cfg, idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), clip)
        opt.step()
        losses.append(loss.item())
    result["step_losses"] = torch.tensor(losses)
    for k, v in P.items():
        result["final." + k] = v.detach().clone()
    result["inputs"] = torch.stack([b[0] for b in batches]).float()
    result["targets"] = torch.stack([b[1] for b in batches]).float()
    result["hyper"] = torch.tensor([lr, wd, clip, 0.9, 0.95, 1e-8])
    write_safetensors(out, result)


def checkpoint_loss(ckpt, tokens):
    with open(f"{ckpt}/config.json") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "gpt2"
    P = read_safetensors(f"{ckpt}/model.safetensors")
    expected = set(param_names(cfg["n_layer"]))
    missing = expected - set(P)
    if missing:
        sys.exit(f"checkpoint lacks tensors: {sorted(missing)[:5]}")
    T = read_safetensors(tokens)
    with torch.no_grad():
        _, loss = forward(P, cfg, T["inputs"].long(), T["targets"].long())
    print(json.dumps({"loss": loss.item()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--out", required=True)
    l = sub.add_parser("loss")
    l.add_argument("--checkpoint", required=True)
    l.add_argument("--tokens", required=True)
    a = ap.parse_args()
    if a.cmd == "golden":
        golden(a.out)
    else:
        checkpoint_loss(a.checkpoint, a.tokens)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Peak memory of ZSIH's Kronecker layer at the paper's size, trained on CPU (recorded in docs/zsih.md).

    OMP_NUM_THREADS=1 python experiments/bench_kronecker_memory.py            # 256 x 256, batch 250, 3 Adam steps
    OMP_NUM_THREADS=1 python experiments/bench_kronecker_memory.py --full     # the whole ZSIH code learner + encoders

Default: the Kronecker layer (two 4,096 -> 256 projections, the official feature width, then the 65,536-d
batched outer product with ReLU) followed by the first graph convolution (65,536 -> 1,024, over the batch graph
of eq. 5.6) and the second (1,024 -> 64), trained with Adam for ``--steps`` steps on random data.
``--full`` trains the complete ZSIH model (encoders, code learner, stochastic neurons, decoder; eq. 5.10).

Prints the process's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the
Python interpreter and torch, ~0.3-0.4 GiB) and, as references, the sizes the layer implies: its activation, the
first GCN's weight with Adam's state, and what ``torch.kron`` of the two batch matrices would have allocated.
Exit status 1 when the peak exceeds ``--limit-gib`` (8).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 1024 ** 3


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=256, help="projection width m (m x m Kronecker output)")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--in-dim", type=int, default=4096)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--full", action="store_true", help="train the whole ZSIH model, not only the fusion + GCNs")
    p.add_argument("--limit-gib", type=float, default=8.0)
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from lightning_hash.nn.zsih_layers import (GraphConvolution, KroneckerFusion, normalized_adjacency,
                                               semantic_adjacency)

    torch.manual_seed(0)
    B, m, d = args.batch, args.width, args.in_dim
    base = peak_rss_bytes()
    x_sk, x_im = torch.randn(B, d), torch.randn(B, d)
    classes = torch.randint(0, 100, (B,))
    W = F.normalize(torch.randn(100, 300), dim=1)
    if args.full:
        from lightning_hash.methods.zsih import ZSIH
        model = ZSIH(bits=args.bits, image_dim=d, sketch_dim=d, semantic_dim=300, num_classes=100, fusion_width=m)
        model._W, model._seen = W, torch.ones(100, dtype=torch.bool)
        batch = {"image": x_im, "sketch": x_sk, "label": F.one_hot(classes, 100).float()}

        def loss_fn():
            return model.compute_loss(batch)[0]
    else:
        fusion = KroneckerFusion(d, d, m, m)
        gcn1, gcn2 = GraphConvolution(m * m, 1024), GraphConvolution(1024, args.bits)
        model = torch.nn.ModuleList([fusion, gcn1, gcn2])
        A = normalized_adjacency(semantic_adjacency(W[classes], 0.1))

        def loss_fn():
            h = F.relu(gcn1(fusion(x_sk, x_im), A, normalized=True))
            return torch.sigmoid(gcn2(h, A, normalized=True)).mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    n_params = sum(p.numel() for p in model.parameters())
    start = time.time()
    for _ in range(args.steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    seconds = (time.time() - start) / args.steps
    peak = peak_rss_bytes()
    f32 = 4
    what = "full ZSIH" if args.full else "fusion + 2 GCNs"
    print(f"Kronecker layer {m} x {m} ({m * m:,}-d), batch {B}, inputs {d}-d, {what}"
          f", {n_params:,} parameters, Adam, {args.steps} steps on CPU ({seconds:.2f} s/step)")
    print(f"peak memory (ru_maxrss): {peak / GIB:.2f} GiB  (before building the model: {base / GIB:.2f} GiB; "
          f"limit {args.limit_gib:g} GiB)")
    print("references:")
    print(f"  fused activation [B, m*m] float32      : {B * m * m * f32 / GIB:.3f} GiB")
    print(f"  GCN-1 weight (m*m x 1024) + grad + Adam : {4 * m * m * 1024 * f32 / GIB:.3f} GiB")
    print(f"  torch.kron of the two [B, m] batches    : {(B * m) ** 2 * f32 / GIB:.1f} GiB  (not built)")
    ok = peak <= args.limit_gib * GIB
    print("PASS" if ok else "FAIL", f"peak {peak / GIB:.2f} GiB {'<=' if ok else '>'} {args.limit_gib:g} GiB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""CPU test of scripts/kernel_trace.py: a synthetic device timeline with known spans, gaps, overlaps and classes must
come back as those numbers, and its SVG picture must hold one tooltip per record.

usage: python3 tests/scripts/kernel_trace_summary.py <repository root> <scratch dir>
"""
import importlib.util
import os
import sys

root, scratch = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("kernel_trace", os.path.join(root, "scripts", "kernel_trace.py"))
kt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kt)

HEADER = ("kind,name,start_us,end_us,duration_us,stream,graph_node,grid,block,cluster,registers,static_smem,"
          "dynamic_smem,bytes")
# (name, start, end, stream): text embedding, a cuBLASLt GEMM, the bias cache on a side stream (overlapping the GEMM
# by 3 us), the attention starting 0.5 us before the GEMM ends (PDL), a LayerNorm, a second attention 7 us later.
RECORDS = [
    ("void layoutrt::cuda::(anonymous namespace)::text_embedding_warp_kernel<__half, 4>(int)", 0.0, 3.0, 7),
    ("nvjet_hsh_128x144_64x5_2x1_v_bz_coopA_TNN", 4.0, 10.0, 7),
    ("void layoutrt::cuda::flash::bias_cache_kernel(layoutrt::cuda::flash::FlashParams)", 5.0, 8.0, 9),
    ("void layoutrt::cuda::flash::flash_wgmma_kernel<2>(layoutrt::cuda::flash::FlashParams)", 9.5, 20.0, 7),
    ("void layoutrt::cuda::layer_norm_warp_kernel<__half, \"x\", 8>(const __half*)", 21.0, 23.0, 7),
    ("void layoutrt::cuda::flash::flash_wgmma_kernel<2>(layoutrt::cuda::flash::FlashParams)", 30.0, 40.0, 7),
]
path = os.path.join(scratch, "kernel_trace_test.b1.csv")
with open(path, "w") as f:
    f.write(HEADER + "\n")
    for name, a, b, s in RECORDS:
        q = name.replace('"', '""')
        f.write(f'kernel,"{q}",{a:.3f},{b:.3f},{b - a:.3f},{s},0,1.1.1,128.1.1,1.1.1,96,0,0,0\n')
    # The run's download after the forward: outside the forward's window.
    f.write('memcpy,"memcpy",50.000,52.000,2.000,7,0,0.0.0,0.0.0,0.0.0,0,0,0,4096\n')

failures = []


def expect(what, got, want, tol=1e-6):
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        ok = abs(got - want) <= tol
    else:
        ok = got == want
    if not ok:
        failures.append(f"{what}: got {got!r}, want {want!r}")


rows = kt.load(path)
expect("records read", len(rows), len(RECORDS) + 1)
a = kt.analyse(rows)
expect("transfers outside the forward", a["outside"], 1)
expect("records in the forward", a["n"], len(RECORDS))
expect("span", a["span"], 40.0)
expect("busy", a["busy"], 31.0)  # [0,3] [4,20] [21,23] [30,40]
expect("idle", a["idle"], 9.0)
expect("gaps", sorted(round(g[0], 6) for g in a["gaps"]), [1.0, 1.0, 7.0])
expect("overlap", a["overlap"], 3.5)
expect("streams", a["streams"], [7, 9])
expect("attention count", a["classes"]["attention"][0], 2)
expect("attention time", a["classes"]["attention"][1], 20.5)
expect("bias cache class", a["classes"]["attention bias cache"][0], 1)
expect("GEMM class", a["classes"]["GEMM (cuBLASLt)"][1], 6.0)
expect("layernorm class", a["classes"]["layernorm"][1], 2.0)
expect("embeddings class", a["classes"]["embeddings"][1], 3.0)
expect("layer period", a["periods"], [20.5])
# Attributed: the attention launched 0.5 us early is charged from the GEMM's end, the side stream's bias cache (started
# while the GEMM ran) nothing; the attributed times sum to the busy time.
expect("attributed attention", a["classes"]["attention"][2], 20.0)
expect("attributed GEMM", a["classes"]["GEMM (cuBLASLt)"][2], 6.0)
expect("attributed bias cache", a["classes"]["attention bias cache"][2], 0.0)
expect("attributed sum", sum(c[2] for c in a["classes"].values()), a["busy"])
# One layer: from the first attention's start to the second's, the attention (10 us attributed) and the LayerNorm (2).
expect("layer stretches", a["layer"]["layers"], 1)
expect("layer kernels", [(k[0], k[1], round(k[2], 6)) for k in a["layer"]["kernels"]],
       [("layoutrt::cuda::flash::flash_wgmma_kernel", "attention", 10.0),
        ("layoutrt::cuda::layer_norm_warp_kernel", "layernorm", 2.0)])
longest = max(a["gaps"], key=lambda g: g[0])
expect("longest gap before", kt.short_name(longest[3]["name"]), "layoutrt::cuda::layer_norm_warp_kernel")
expect("longest gap after", kt.short_name(longest[4]["name"]), "layoutrt::cuda::flash::flash_wgmma_kernel")
expect("short name (anonymous namespace)", kt.short_name(RECORDS[0][0]),
       "layoutrt::cuda::(anonymous namespace)::text_embedding_warp_kernel")

md = kt.summarise(path)
for needle in ("span 40.0 us", "1 transfers of the run outside it", "idle 9.0 us in 3 gaps",
               "overlapping their predecessors 3.5 us",
               "layer period (attention start to the next) median 20.50 us", "| attention | 2 | 20.5 | 20.0 |",
               "| 1 | `layoutrt::cuda::layer_norm_warp_kernel` | layernorm | 2.00 |"):
    if needle not in md:
        failures.append(f"summary lacks {needle!r}:\n{md}")

svg = os.path.join(scratch, "kernel_trace_test.svg")
kt.svg(path, svg)
text = open(svg).read()
expect("svg tooltips", text.count("<title>"), len(RECORDS))
expect("svg lanes", text.count(">stream "), 2)
kt.svg(path, svg, 20.0, 25.0)  # the window holds the first attention's end and the LayerNorm only
expect("svg window tooltips", open(svg).read().count("<title>"), 2)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("kernel_trace.py: all checks passed")

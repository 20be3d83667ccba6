// Self-attention with LayoutLMv3's relative-position biases on the GPU: the twin of src/cpu/attention.cpp.
//
// Correctness-first design (a fused flash kernel lives elsewhere): one CTA owns one (sequence, head, tile of
// kQueryTile queries) and materialises that tile's FP32 scores against EVERY key of its sequence in shared memory
// (kQueryTile × max_seq_len floats: 45 KB at L = 709), so the softmax is an exact two-pass max-subtracted softmax over
// the whole row, as in the CPU twin — no online rescaling, no global scratch (attention_scratch_bytes is 0).
//
// Numerics mirror the CPU twin step by step, in FP32 whatever the activation dtype:
//   q' = q / √d (IEEE division, as transformers scales q before the product), s = Σ_c q'_c k_c,
//   s += (b1d + (bx + by)) / √d   (only when the tables are defined; 2D only together with 1D — see backend.h),
//   masked keys (key_valid = 0) are skipped: they get probability exactly 0 (transformers adds finfo.min, whose exp
//   underflows to 0 — trap 8), and their V rows are zeroed in shared memory so even a non-finite V contributes 0,
//   p = exp(s − max) / Σ exp(s − max); ctx = Σ_j p_j v_j accumulated in key order (the CPU twin's order).
// A query row whose every key is masked has no valid key: the CPU twin then leaves its context at zero; so do we.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kQueryTile = 16;                  // queries per CTA
constexpr int kKeyTile = 64;                    // keys per shared-memory K/V tile
constexpr int kThreads = 128;                   // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = kQueryTile / kWarps;  // 4: warp w owns query rows [4w, 4w + 4) of the tile
constexpr int kMaxHeadDim = 128;
static_assert(kKeyTile == 64, "phase 1 maps lane -> keys {lane, lane + 32}");

struct Params {
  const int32_t* seq_begin;
  const int32_t* pos1d;
  const int32_t* pos_x;
  const int32_t* pos_y;
  const uint8_t* key_valid;
  const float* bias1d;  // [heads, n1] or nullptr
  const float* bias_x;  // [heads, n2] or nullptr (nullptr whenever bias1d is)
  const float* bias_y;
  int n1, n2, max_dist_1d, max_dist_2d;
  int num_heads, head_dim, hidden, max_seq_len;
  float sqrt_d;
};

// Shared memory of one CTA, in floats/ints: q [QT][d] | kv [KT][d+1] | scores [QT][max_seq_len] | key meta 4 × [KT].
// The K/V tile row stride is d + 1 so that lanes reading different keys at the same column hit different banks.
size_t smem_bytes(int64_t max_seq_len, int head_dim) {
  return sizeof(float) * (static_cast<size_t>(kQueryTile) * head_dim + static_cast<size_t>(kKeyTile) * (head_dim + 1) +
                          static_cast<size_t>(kQueryTile) * max_seq_len) +
         sizeof(int32_t) * 4 * kKeyTile;
}

// grid (ceil(max_seq_len / kQueryTile), num_heads, num_seqs), block kThreads, dynamic smem smem_bytes(max_seq_len, d).
// CTA (t, h, b) computes ctx rows seq_begin[b] + [16t, 16t + 16) ∩ sequence b, columns [h·d, h·d + d) of `out`:
//   reads  qkv rows of sequence b (q of its query tile, k and v of all its keys, head h), pos1d/pos_x/pos_y/key_valid
//          of those rows, the bias rows of head h;
//   writes out only (no scratch, no atomics: every output element is written by exactly one thread).
// Phase 1: per K tile, lane → keys {lane, lane+32}, warp → its 4 query rows: 8 FP32 dot products per thread; + bias,
//          masked → −inf, into the score rows. Phase 2: warp-wide softmax of its own rows. Phase 3: per V tile,
//          lane → columns {lane + 32i}, warp → its 4 rows: ctx accumulated in registers, then stored.
// DC = ceil(head_dim / 32) (1, 2 or 4) sizes the phase-3 accumulators.
template <class T, int DC>
__global__ void __launch_bounds__(kThreads) attention_kernel(Params p, const T* __restrict__ qkv, T* __restrict__ out) {
  const int b = blockIdx.z, h = blockIdx.y;
  const int64_t begin = p.seq_begin[b];
  const int L = p.seq_begin[b + 1] - p.seq_begin[b];
  // An invariant of ours (prepare_batch): no sequence is longer than max_seq_len, which sized shared memory.
  if (L < 0 || L > p.max_seq_len) __trap();
  const int q0 = blockIdx.x * kQueryTile;
  if (q0 >= L) return;  // whole CTA leaves together, before any barrier

  const int d = p.head_dim, H = p.hidden, kvld = d + 1;
  const int64_t ld = 3 * int64_t{H};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  extern __shared__ float smem[];
  float* q_s = smem;                                   // [QT][d]
  float* kv_s = q_s + kQueryTile * d;                  // [KT][d+1]
  float* s_s = kv_s + kKeyTile * kvld;                 // [QT][max_seq_len]
  int* kmeta = reinterpret_cast<int*>(s_s + static_cast<size_t>(kQueryTile) * p.max_seq_len);
  int* k_p1 = kmeta;
  int* k_px = kmeta + kKeyTile;
  int* k_py = kmeta + 2 * kKeyTile;
  int* k_ok = kmeta + 3 * kKeyTile;

  // Q tile, scaled by 1/√d with an IEEE division like the CPU twin; rows past the sequence are zero.
  for (int e = tid; e < kQueryTile * d; e += kThreads) {
    const int qi = e / d, c = e - qi * d, qq = q0 + qi;
    q_s[e] = qq < L ? to_f32(qkv[(begin + qq) * ld + int64_t{h} * d + c]) / p.sqrt_d : 0.f;
  }
  // This thread's 4 query rows: their bias positions.
  const bool has1d = p.bias1d != nullptr, has2d = p.bias_x != nullptr;
  const float* b1 = has1d ? p.bias1d + int64_t{h} * p.n1 + p.max_dist_1d : nullptr;
  const float* bx = has2d ? p.bias_x + int64_t{h} * p.n2 + p.max_dist_2d : nullptr;
  const float* by = has2d ? p.bias_y + int64_t{h} * p.n2 + p.max_dist_2d : nullptr;
  int q_p1[kRowsPerWarp], q_px[kRowsPerWarp], q_py[kRowsPerWarp];
#pragma unroll
  for (int qi = 0; qi < kRowsPerWarp; ++qi) {
    const int qq = min(q0 + warp * kRowsPerWarp + qi, L - 1);  // rows past L: any valid row (results unused)
    q_p1[qi] = p.pos1d[begin + qq];
    q_px[qi] = p.pos_x[begin + qq];
    q_py[qi] = p.pos_y[begin + qq];
  }

  // ---- phase 1: scores ----
  for (int k0 = 0; k0 < L; k0 += kKeyTile) {
    const int nk = min(kKeyTile, L - k0);
    __syncthreads();  // previous tile fully consumed (and, first time, q_s visible after the next barrier)
    for (int e = tid; e < nk * d; e += kThreads) {
      const int kk = e / d, c = e - kk * d;
      kv_s[kk * kvld + c] = to_f32(qkv[(begin + k0 + kk) * ld + H + int64_t{h} * d + c]);
    }
    for (int kk = tid; kk < nk; kk += kThreads) {
      const int64_t r = begin + k0 + kk;
      k_p1[kk] = p.pos1d[r];
      k_px[kk] = p.pos_x[r];
      k_py[kk] = p.pos_y[r];
      k_ok[kk] = p.key_valid[r];
    }
    __syncthreads();

    float acc[kRowsPerWarp][2];
#pragma unroll
    for (int qi = 0; qi < kRowsPerWarp; ++qi) acc[qi][0] = acc[qi][1] = 0.f;
    const float* qrow = q_s + warp * kRowsPerWarp * d;
    const float* ka = kv_s + lane * kvld;          // keys past nk hold stale data: their results are discarded
    const float* kb = kv_s + (lane + 32) * kvld;
    for (int c = 0; c < d; ++c) {
      const float x = ka[c], y = kb[c];
#pragma unroll
      for (int qi = 0; qi < kRowsPerWarp; ++qi) {
        const float qv = qrow[qi * d + c];  // broadcast: the warp reads one address
        acc[qi][0] = fmaf(qv, x, acc[qi][0]);
        acc[qi][1] = fmaf(qv, y, acc[qi][1]);
      }
    }
#pragma unroll
    for (int kj = 0; kj < 2; ++kj) {
      const int kk = lane + 32 * kj;
      if (kk >= nk) continue;
#pragma unroll
      for (int qi = 0; qi < kRowsPerWarp; ++qi) {
        float s = -INFINITY;
        if (k_ok[kk]) {
          s = acc[qi][kj];
          if (has1d) {
            const float rel1 = b1[k_p1[kk] - q_p1[qi]];  // column minus row (trap 5)
            const float bias = has2d ? rel1 + (bx[k_px[kk] - q_px[qi]] + by[k_py[kk] - q_py[qi]]) : rel1;
            s += bias / p.sqrt_d;  // the bias is divided by √d too (trap 3)
          }
        }
        s_s[static_cast<size_t>(warp * kRowsPerWarp + qi) * p.max_seq_len + k0 + kk] = s;
      }
    }
  }
  __syncwarp();  // each warp reads back only the score rows it wrote

  // ---- phase 2: softmax of this warp's rows (FP32, max-subtracted) ----
#pragma unroll 1
  for (int qi = 0; qi < kRowsPerWarp; ++qi) {
    if (q0 + warp * kRowsPerWarp + qi >= L) break;
    float* row = s_s + static_cast<size_t>(warp * kRowsPerWarp + qi) * p.max_seq_len;
    float m = -INFINITY;
    for (int j = lane; j < L; j += 32) m = fmaxf(m, row[j]);
    m = warp_max(m);
    if (m == -INFINITY) {  // every key masked: the CPU twin's context stays zero
      for (int j = lane; j < L; j += 32) row[j] = 0.f;
      continue;
    }
    float sum = 0.f;
    for (int j = lane; j < L; j += 32) {
      const float e = expf(row[j] - m);  // masked: exp(-inf) = 0
      row[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    for (int j = lane; j < L; j += 32) row[j] = row[j] / sum;
  }
  __syncwarp();

  // ---- phase 3: ctx = P · V ----
  float acc[kRowsPerWarp][DC];
#pragma unroll
  for (int qi = 0; qi < kRowsPerWarp; ++qi)
#pragma unroll
    for (int ci = 0; ci < DC; ++ci) acc[qi][ci] = 0.f;
  const float* prow = s_s + static_cast<size_t>(warp * kRowsPerWarp) * p.max_seq_len;
  for (int k0 = 0; k0 < L; k0 += kKeyTile) {
    const int nk = min(kKeyTile, L - k0);
    __syncthreads();  // all warps done with the previous K/V tile
    for (int e = tid; e < nk * d; e += kThreads) {
      const int kk = e / d, c = e - kk * d;
      const int64_t r = begin + k0 + kk;
      kv_s[kk * kvld + c] = p.key_valid[r] ? to_f32(qkv[r * ld + 2 * int64_t{H} + int64_t{h} * d + c]) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < nk; ++kk) {
      float v[DC];
#pragma unroll
      for (int ci = 0; ci < DC; ++ci) {
        const int c = lane + 32 * ci;
        v[ci] = c < d ? kv_s[kk * kvld + c] : 0.f;
      }
#pragma unroll
      for (int qi = 0; qi < kRowsPerWarp; ++qi) {
        const float pr = prow[static_cast<size_t>(qi) * p.max_seq_len + k0 + kk];
#pragma unroll
        for (int ci = 0; ci < DC; ++ci) acc[qi][ci] = fmaf(pr, v[ci], acc[qi][ci]);
      }
    }
  }
#pragma unroll
  for (int qi = 0; qi < kRowsPerWarp; ++qi) {
    const int qq = q0 + warp * kRowsPerWarp + qi;
    if (qq >= L) break;
    T* o = out + (begin + qq) * H + int64_t{h} * d;
#pragma unroll
    for (int ci = 0; ci < DC; ++ci) {
      const int c = lane + 32 * ci;
      if (c < d) o[c] = from_f32<T>(acc[qi][ci]);
    }
  }
}

[[noreturn]] void fail(const AttentionArgs& a, const char* what) {
  throw_error(ErrorCode::kInternal, "cuda attention: ", what, " (num_seqs ", a.num_seqs, ", max_seq_len ", a.max_seq_len,
              ", heads ", a.num_heads, " x d ", a.head_dim, ", qkv ", dtype_name(a.qkv.dtype), " [", a.qkv.dim(0), ",",
              a.qkv.dim(1), "], out ", dtype_name(a.out.dtype), " [", a.out.dim(0), ",", a.out.dim(1), "])");
}

void check_table(const AttentionArgs& a, const TensorView& t, int max_dist, const char* name) {
  if (!t.defined()) return;
  if (t.device != Device::kCUDA || t.dtype != DType::kF32 || t.rank != 2 || t.dim(0) != a.num_heads ||
      t.dim(1) != 2 * int64_t{max_dist} + 1 || max_dist < 0)
    throw_error(ErrorCode::kInternal, "cuda attention: bias table ", name, " must be F32 [", a.num_heads, ", ",
                2 * int64_t{max_dist} + 1, "] on the GPU, is ", dtype_name(t.dtype), " rank ", t.rank, " [", t.dims[0],
                ", ", t.dims[1], "]");
}

template <class T, int DC>
void launch(const AttentionArgs& a, const Params& p, size_t smem, cudaStream_t stream) {
  auto kernel = attention_kernel<T, DC>;
  // Above 48 KB a kernel must opt in to more dynamic shared memory (per device; cheap to repeat).
  if (smem > 48 * 1024) LRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                      static_cast<int>(smem)));
  const dim3 grid(ceil_div(a.max_seq_len, kQueryTile), static_cast<unsigned>(a.num_heads),
                  static_cast<unsigned>(a.num_seqs));
  kernel<<<grid, kThreads, smem, stream>>>(p, static_cast<const T*>(a.qkv.data), static_cast<T*>(a.out.data));
  LRT_CUDA_LAUNCHED("attention_kernel");
}

}  // namespace

size_t attention_scratch_bytes(int64_t, int64_t, int, int, DType) {
  return 0;  // scores live in shared memory (see the file comment)
}

void attention(const AttentionArgs& a, cudaStream_t stream) {
  const int64_t d = a.head_dim, H = int64_t{a.num_heads} * d;
  if (a.num_heads <= 0 || d <= 0 || d > kMaxHeadDim) fail(a, "head_dim must be in 1..128 and heads > 0");
  if (a.qkv.device != Device::kCUDA || a.out.device != Device::kCUDA) fail(a, "qkv and out must be GPU views");
  if (a.qkv.dtype != a.out.dtype) fail(a, "qkv and out dtypes differ");
  if (a.qkv.rank != 2 || a.out.rank != 2 || a.qkv.dim(1) != 3 * H || a.out.dim(1) != H || a.qkv.dim(0) != a.out.dim(0))
    fail(a, "expected qkv [rows, 3*heads*d] and out [rows, heads*d]");
  if (a.num_seqs < 0 || a.max_seq_len < 0 || a.num_seqs > 65535) fail(a, "bad batch geometry");
  if (a.num_seqs == 0 || a.max_seq_len == 0 || a.qkv.dim(0) == 0) return;
  if (!a.seq_begin || !a.pos1d || !a.pos_x || !a.pos_y || !a.key_valid) fail(a, "row metadata pointers missing");
  check_table(a, a.bias1d, a.max_dist_1d, "bias1d");
  check_table(a, a.bias_x, a.max_dist_2d, "bias_x");
  check_table(a, a.bias_y, a.max_dist_2d, "bias_y");
  if (a.bias_x.defined() != a.bias_y.defined()) fail(a, "bias_x and bias_y must be both defined or both undefined");

  Params p{};
  p.seq_begin = a.seq_begin;
  p.pos1d = a.pos1d;
  p.pos_x = a.pos_x;
  p.pos_y = a.pos_y;
  p.key_valid = a.key_valid;
  // The 2D bias is only ever added together with the 1D bias (transformers; the CPU twin's `if (b1)`).
  p.bias1d = a.bias1d.defined() ? a.bias1d.as<float>() : nullptr;
  p.bias_x = p.bias1d && a.bias_x.defined() ? a.bias_x.as<float>() : nullptr;
  p.bias_y = p.bias_x ? a.bias_y.as<float>() : nullptr;
  p.n1 = 2 * a.max_dist_1d + 1;
  p.n2 = 2 * a.max_dist_2d + 1;
  p.max_dist_1d = a.max_dist_1d;
  p.max_dist_2d = a.max_dist_2d;
  p.num_heads = a.num_heads;
  p.head_dim = a.head_dim;
  p.hidden = static_cast<int>(H);
  p.max_seq_len = static_cast<int>(a.max_seq_len);
  p.sqrt_d = std::sqrt(static_cast<float>(d));  // correctly rounded, = the CPU twin's std::sqrt(float)

  const size_t smem = smem_bytes(a.max_seq_len, a.head_dim);
  int device = 0, smem_limit = 0;
  LRT_CUDA(cudaGetDevice(&device));
  LRT_CUDA(cudaDeviceGetAttribute(&smem_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (smem > static_cast<size_t>(smem_limit))
    throw_error(ErrorCode::kUnsupported, "cuda attention: sequences of ", a.max_seq_len, " rows with head_dim ", d,
                " need ", smem, " bytes of shared memory per block; this GPU allows ", smem_limit);

  LRT_DISPATCH_FLOAT(a.qkv.dtype, T, {
    if (d <= 32) launch<T, 1>(a, p, smem, stream);
    else if (d <= 64) launch<T, 2>(a, p, smem, stream);
    else launch<T, 4>(a, p, smem, stream);
  });
}

}  // namespace layoutrt::cuda

// The CUDA backend's kernel entry points, one family per file (DESIGN.md): each is the GPU twin of the CPU op of the
// same name in src/cpu/ and is checked against it by tests/gpu/. All launch on `stream`, allocate nothing, and take
// device pointers. Activations may be F32, F16 or BF16; math is FP32 (LayerNorm statistics, softmax, GELU always).
// Host-only header (no device code), so .cpp tests can include it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "ops/backend.h"

namespace layoutrt::cuda {

// ---- embed.cu ------------------------------------------------------------------------------------------------------
// TextEmbeddingArgs semantics (ops/backend.h), word + token_type + position + 2D spatial, then LayerNorm (and the
// JointNorm where set), one pass.
void text_embedding(const TextEmbeddingArgs& a, cudaStream_t stream);

// ---- patch_embed.cu ------------------------------------------------------------------------------------------------
// im2col of non-overlapping patches: patches[b*P + (py*G+px), c*p*p + ky*p + kx] =
//   pixels[b, c, py*p + ky, px*p + kx]   (G = S/p, P = G*G), converted to patches.dtype. This is the column order of
// patch_embed.proj.weight [H, C, p, p] flattened, so the conv is patches · Wᵀ.
void im2col_patches(const PatchEmbeddingArgs& a, cudaStream_t stream);
// Visual rows after the projection GEMM (a.proj = patches · Wᵀ, WITHOUT the conv bias, already computed; the bias is
// added here in FP32 like the CPU twin, so FP16 plans round the conv output once, not twice):
//   out[cls_row[b]]         = LayerNorm(cls_token + pos_embed[0])
//   out[cls_row[b] + 1 + i] = LayerNorm((proj[b*P + i] + bias) + pos_embed[1 + i])   LayerNorm = a.ln_weight/bias, a.eps
// then a.joint (JointNorm) where set; the same rows unrounded to a.out_f32 where set.
void visual_rows(const PatchEmbeddingArgs& a, cudaStream_t stream);

// ---- layernorm.cu --------------------------------------------------------------------------------------------------
// LayerNormArgs semantics: out = LayerNorm((x + x_bias) + residual), x_bias / residual optional, out may alias x.
// FP32 statistics.
void layer_norm(const LayerNormArgs& a, cudaStream_t stream);
// layer_norm(a), then gather_linear(h) on its output, in one kernel (Backend::layer_norm_gather_linear): h.x is
// a.out, h.rows a permutation of a's rows, one dtype for x, residual and out (no FP32 stream), rows of whole 16-byte
// vectors per lane with the affine in registers (H = 768 in F16 / BF16 / F32), W of at most 32 labels and 48 KB,
// aligned views; false (nothing launched) otherwise. The same bits as the two kernels.
bool layer_norm_head(const LayerNormArgs& a, const GatherLinearArgs& h, cudaStream_t stream);

// ---- elementwise.cu ------------------------------------------------------------------------------------------------
// In place: y[r, n] = epilogue(y[r, n] + bias[n]); bias F32 [N] or undefined. y is [M, N] of any float dtype.
void bias_activation(const TensorView& y, const TensorView& bias, Epilogue epilogue, cudaStream_t stream);
// dst[i] = dst.dtype(src[i]) for dst.numel() values (F32 / F16 / BF16 destination, round to nearest even).
void convert_from_f32(const float* src, const TensorView& dst, cudaStream_t stream);
// GatherRowsArgs semantics: out[i] = float(x[rows[i]]).
void gather_rows(const GatherRowsArgs& a, cudaStream_t stream);
// GatherLinearArgs semantics in one kernel (FP32 math) where it applies — W F32 of at most 16 rows and 48 KB, rows of
// x whole 16-byte vectors per lane (H = 32 · (16 / element size) · {1, 2, 3, 4, 6}), aligned x and W; false (nothing
// launched) otherwise.
bool gather_linear(const GatherLinearArgs& a, cudaStream_t stream);
// Fills a float tensor (F32/F16/BF16) with NaN; other dtypes with 0xFF bytes.
void fill_nan(const TensorView& t, cudaStream_t stream);

// ---- linear.cu -----------------------------------------------------------------------------------------------------
// y = epilogue(x · Wᵀ + b) with cuBLASLt. F32 activations: FP32 compute (CUBLAS_COMPUTE_32F, no TF32) or, when
// allow_tf32, CUBLAS_COMPUTE_32F_FAST_TF32. F16/BF16: tensor cores with FP32 accumulation. x, W and y share a dtype.
// One per backend (owns the cuBLASLt handle, a workspace and cached descriptors/algorithms per shape).
class LinearRunner {
 public:
  static std::unique_ptr<LinearRunner> create(bool allow_tf32);
  virtual ~LinearRunner() = default;
  // `lane`: which of the caller's concurrent streams (Backend lanes) this is; each lane's GEMMs get a cuBLASLt
  // workspace of their own (made on the lane's first GEMM, never inside a graph capture). `lanes`: how many lanes the
  // forward runs (concurrently, or in turn under stage timing; 1 outside lanes): part of the GEMM's key (GemmKey::lanes),
  // its candidates timed as that many concurrent copies.
  virtual void run(const LinearArgs& a, cudaStream_t stream, int lane = 0, int lanes = 1) = 0;
  // Called before GEMM candidates are timed (first use of a shape, outside captures): the caller waits there for any
  // of its other streams that could share the GPU with the timed runs.
  virtual void set_quiesce(std::function<void()> quiesce) = 0;
};

// ---- attention.cu --------------------------------------------------------------------------------------------------
// AttentionArgs semantics (ops/backend.h). Scratch bytes needed for a batch.
size_t attention_scratch_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads, int head_dim, DType act);
void attention(const AttentionArgs& a, cudaStream_t stream);

}  // namespace layoutrt::cuda

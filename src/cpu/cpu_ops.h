// The CPU backend's ops: FP32 reference implementations of ops/backend.h (the oracle for the CUDA kernels, and the
// fallback where no GPU exists). Every function takes F32 views in host memory.
#pragma once

#include "ops/backend.h"

namespace layoutrt::cpu {

// C[M,N] = A[M,K] · B[N,K]ᵀ (row-major, leading dims lda/ldb/ldc). OpenBLAS when built with it, else our own loop.
void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc);

void apply_epilogue(float* y, int64_t rows, int64_t cols, const float* bias, Epilogue e);
// out = LayerNorm((x + x_bias) + residual); residual / x_bias may be null.
void layer_norm_row(const float* x, const float* residual, const float* weight, const float* bias, float eps,
                    int64_t n, float* out, const float* x_bias = nullptr);

void text_embedding(const TextEmbeddingArgs& a);
void patch_embedding(const PatchEmbeddingArgs& a);
void linear(const LinearArgs& a);
void layer_norm(const LayerNormArgs& a);
void attention(const AttentionArgs& a);
size_t attention_scratch_bytes(int64_t max_seq_len, int head_dim);
void gather_rows(const GatherRowsArgs& a);

}  // namespace layoutrt::cpu

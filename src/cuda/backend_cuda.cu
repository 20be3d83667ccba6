// The CUDA backend: device memory, one non-blocking stream per backend object (one per ExecutionContext, one for the
// Engine's uploads), ops queued on that stream; a LinearRunner (cuBLASLt handle + 32 MiB workspace) made on first use. The kernels live one family per file (cuda_ops.h); this file only
// checks views, routes each op, and owns the device, the stream and the LinearRunner (cuBLASLt).
//
// Weights arrive already in the plan's dtypes (plan_layout.cpp: embedding_dtype / encoder_dtype; biases, LayerNorm
// parameters and heads F32), so weight_dtype() keeps what is stored; activations are F32 (fp32, tf32), F16 (fp16,
// mixed) or BF16 (bf16).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/flash_attention.h"
#include "cuda/graphs.h"

namespace layoutrt {
namespace cuda {

bool stream_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  LRT_CUDA(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

bool sync_check_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("LAYOUTRT_CUDA_SYNC_CHECK");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return enabled;
}

}  // namespace cuda

namespace {

// The first node of every recorded one-lane forward (run_recorded): an empty kernel, so that the graph has one root
// behind the uploads queued before it, and the bias cache's side stream and the embeddings fork from that root.
// Without it both branches are roots, each waiting for the stream's copies, and the forward's first kernels started
// later: H200, fp16, T = 512, with and without it (LAYOUTRT_GRAPH_ROOT=0) in the same calls, the node inside the timed
// forward: B = 1 0.618 / 0.622 / 0.620 / 0.624 / 0.617 vs 0.628 / 0.629 / 0.627 / 0.628 ms, B = 2 0.911 – 0.915 vs
// 0.928 – 0.934 ms (bench/results/2026-12-03-h200-graph-root.md). With two lanes B = 8 was the same and B = 32 1.0 /
// 1.7 % slower with it, so lanes go without. That the roots' waits are what cost is our reading; the timing is what
// we know.
__global__ void graph_root_kernel() {}

std::string dims_str(const TensorView& t) {
  std::string s = std::string(dtype_name(t.dtype)) + " [";
  for (int i = 0; i < t.rank; ++i) s += (i ? "," : "") + std::to_string(t.dims[i]);
  return s + "]" + (t.device == Device::kCUDA ? "" : " (host!)");
}

// Cheap consistency checks of the views an op receives: a failure is a bug of ours (kInternal), named with shapes.
[[noreturn]] void bad_view(const char* op, const std::string& what) {
  throw_error(ErrorCode::kInternal, "cuda ", op, ": ", what);
}
void expect_gpu(const char* op, const char* name, const TensorView& t) {
  if (t.defined() && t.device != Device::kCUDA) bad_view(op, std::string(name) + " is a host view " + dims_str(t));
}
void expect_f32_vector(const char* op, const char* name, const TensorView& t, int64_t n) {
  if (!t.defined() || t.dtype != DType::kF32 || t.rank != 1 || t.dim(0) != n || t.device != Device::kCUDA)
    bad_view(op, std::string(name) + " must be F32 [" + std::to_string(n) + "] on the GPU, is " + dims_str(t));
}
void expect_float_matrix(const char* op, const char* name, const TensorView& t, int64_t cols) {
  if (!t.defined() || t.rank != 2 || t.dim(1) != cols || t.device != Device::kCUDA ||
      !(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16))
    bad_view(op, std::string(name) + " must be a float matrix [rows," + std::to_string(cols) + "] on the GPU, is " +
                     dims_str(t));
}

// An F32 twin of `like` (same rows and columns): the FP32 residual stream next to an activation-dtype output.
void expect_f32_matrix_like(const char* op, const char* name, const TensorView& t, const TensorView& like) {
  if (t.dtype != DType::kF32 || t.rank != 2 || t.dim(0) != like.dim(0) || t.dim(1) != like.dim(1) ||
      t.device != Device::kCUDA)
    bad_view(op, std::string(name) + " must be F32 [" + std::to_string(like.dim(0)) + "," + std::to_string(like.dim(1)) +
                     "] on the GPU, is " + dims_str(t));
}

// The input side of the gathering ops: x a float matrix on the GPU, n ≥ 0, the rows given where n > 0. False: n = 0
// (nothing to do).
bool expect_gather(const char* op, const TensorView& x, const int32_t* rows, int64_t n) {
  expect_float_matrix(op, "x", x, x.dim(1));
  if (n < 0) bad_view(op, "negative n");
  if (n > 0 && !rows) bad_view(op, "rows missing");
  return n > 0;
}

// JointNorm (ops/backend.h): absent, or F32 [H] weight and bias.
void expect_joint(const char* op, const JointNorm& j, int64_t H) {
  if (!j.defined()) return;
  expect_f32_vector(op, "joint weight", j.weight, H);
  expect_f32_vector(op, "joint bias", j.bias, H);
}

class CudaBackend : public Backend {
 public:
  CudaBackend(int device, Precision precision) : device_(device), precision_(precision) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw_error(ErrorCode::kCuda, "CUDA backend: no usable CUDA device (", cudaGetErrorName(e), ": ",
                  cudaGetErrorString(e), ")");
    }
    if (device < 0 || device >= count)
      throw_error(ErrorCode::kInvalidArgument, "CUDA backend: device ", device, " does not exist (", count,
                  " device(s) visible)");
    LRT_CUDA(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    LRT_CUDA(cudaGetDeviceProperties(&prop, device_));
    name_ = prop.name;
    LRT_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    cur_ = stream_;
  }

  ~CudaBackend() override {
    // Never throws: wait for queued work, then release in reverse order of creation.
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    if (side_) cudaStreamSynchronize(side_);
    if (side2_) cudaStreamSynchronize(side2_);
    for (const Lane& l : lanes_) cudaStreamSynchronize(l.stream);
    linear_.reset();
    if (recorded_begin_) cudaEventDestroy(recorded_begin_);
    if (recorded_end_) cudaEventDestroy(recorded_end_);
    if (fork_) cudaEventDestroy(fork_);
    if (join_) cudaEventDestroy(join_);
    if (side_) cudaStreamDestroy(side_);
    if (im2col_done_) cudaEventDestroy(im2col_done_);
    if (side2_) cudaStreamDestroy(side2_);
    for (const Lane& l : lanes_) {
      cudaEventDestroy(l.join);
      cudaStreamDestroy(l.stream);
    }
    if (lanes_fork_) cudaEventDestroy(lanes_fork_);
    cudaStreamDestroy(stream_);
    if (stage_) cudaFreeHost(stage_);
    (void)cudaGetLastError();
  }

  Device device() const override { return Device::kCUDA; }
  std::string name() const override { return name_; }
  void* stream() const override { return stream_; }

  void* allocate(size_t bytes) override {
    activate();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      (void)cudaGetLastError();
      throw_error(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kCuda, "CUDA device ",
                  device_, " (", name_, "): cannot allocate ", bytes, " bytes (", free_b, " of ", total_b,
                  " bytes free): ", cudaGetErrorName(e));
    }
    return p;
  }
  void deallocate(void* p) override {
    if (!p) return;
    // Called from destructors: report, never throw. cudaFree waits for the device's queued work first.
    cudaSetDevice(device_);
    const cudaError_t e = cudaFree(p);
    if (e == cudaErrorCudartUnloading) return;  // process exit: the runtime already released everything
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      std::fprintf(stderr, "layoutrt: cudaFree failed on device %d: %s\n", device_, cudaGetErrorString(e));
    }
  }
  // Page-locked (cudaHostAlloc, portable: usable from every device's context), so copies from it run at the bus's
  // speed, asynchronously (copy_to_device). Freed with cudaFreeHost by the last owner, which may outlive this backend.
  std::shared_ptr<void> allocate_host(size_t bytes) override {
    activate();
    void* p = nullptr;
    const size_t alloc = (bytes + 63) / 64 * 64 + 64;
    const cudaError_t e = cudaHostAlloc(&p, alloc, cudaHostAllocPortable);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw_error(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kCuda, "CUDA: cannot allocate ",
                  bytes, " bytes of page-locked host memory: ", cudaGetErrorName(e));
    }
    std::memset(p, 0, alloc);
    return std::shared_ptr<void>(p, [](void* q) {
      if (cudaFreeHost(q) != cudaSuccess) (void)cudaGetLastError();  // at process exit the runtime may be gone
    });
  }
  // Stream-ordered (after every op queued before it). Copies of up to kStageCopyBytes (a forward's metadata: positions,
  // ids, boxes, head rows) go through a pinned staging ring and do not wait: a forward's dozen uploads no longer cost a
  // stream synchronisation each; the caller may reuse its buffer at once. Larger ones (pixels, weights) copy straight
  // from the caller's memory: from page-locked memory (allocate_host, Engine::host_tensor) asynchronously — the source
  // must stay unchanged until the stream has run the copy —, from pageable memory through the driver's staging,
  // waiting for the stream. The ring restarts after each synchronisation, when no staged copy can still be reading it.
  // H200, B = 32 (19.3 MB of pixels; bench/results/2026-12-02-h200-pinned-inputs.md): the upload phase 2.1 – 2.6 ms
  // from pageable memory, 0.35 – 0.39 ms from page-locked (the copy then runs ahead of the forward on the stream).
  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    activate();
    if (bytes <= kStageCopyBytes) {
      if (!stage_) LRT_CUDA(cudaHostAlloc(&stage_, kStageBytes, cudaHostAllocDefault));
      if (stage_used_ + bytes > kStageBytes) {
        LRT_CUDA(cudaStreamSynchronize(stream_));
        stage_used_ = 0;
      }
      char* slot = static_cast<char*>(stage_) + stage_used_;
      std::memcpy(slot, src, bytes);
      LRT_CUDA(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, stream_));
      stage_used_ += (bytes + 255) / 256 * 256;
      return;
    }
    LRT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    if (page_locked(src)) return;
    LRT_CUDA(cudaStreamSynchronize(stream_));
    stage_used_ = 0;
  }
  // Whether p lies in page-locked host memory (cudaHostAlloc'd or registered) — any offset into it.
  static bool page_locked(const void* p) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeHost;
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    activate();
    LRT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    LRT_CUDA(cudaStreamSynchronize(stream_));
    stage_used_ = 0;
  }
  void fill_nan(const TensorView& t) override {
    expect_gpu("fill_nan", "t", t);
    if (!t.defined() || t.numel() == 0) return;
    activate();
    cuda::fill_nan(t, stream_);
  }
  void synchronize() override {
    activate();
    finish_side();
    LRT_CUDA(cudaStreamSynchronize(stream_));
    stage_used_ = 0;
  }

  DType weight_dtype(DType stored) const override { return stored; }
  DType activation_dtype(Precision p) const override {
    switch (p) {
      case Precision::kFP32: case Precision::kTF32: return DType::kF32;
      case Precision::kFP16: case Precision::kMixed: return DType::kF16;
      case Precision::kBF16: return DType::kBF16;
    }
    return DType::kF32;
  }
  size_t attention_scratch_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads, int head_dim) const override {
    const size_t kernel = cuda::attention_scratch_bytes(num_seqs, max_seq_len, num_heads, head_dim,
                                                        activation_dtype(precision_));
    if (!bias_cache_enabled()) return kernel;
    const size_t cache = cuda::flash_bias_cache_bytes(num_seqs, max_seq_len, num_heads, head_dim);
    // + the attention kernel's tail-split area (flash_attention.h), a few MB.
    return cache <= bias_cache_limit() ? std::max(kernel, cache + cuda::flash_tail_reserve_bytes()) : kernel;
  }

  void text_embedding(const TextEmbeddingArgs& a) override {
    const char* op = "text_embedding";
    if (a.num_tokens < 0) bad_view(op, "negative num_tokens");
    if (a.num_tokens == 0) return;
    const int64_t H = a.out.dim(1);
    expect_float_matrix(op, "out", a.out, H);
    expect_float_matrix(op, "word", a.word, H);
    expect_float_matrix(op, "position", a.position, H);
    expect_float_matrix(op, "token_type", a.token_type, H);
    expect_gpu(op, "x", a.x);
    expect_gpu(op, "y", a.y);
    expect_gpu(op, "h", a.h);
    expect_gpu(op, "w", a.w);
    if (4 * a.x.dim(1) + 2 * a.h.dim(1) != H || a.y.dim(1) != a.x.dim(1) || a.w.dim(1) != a.h.dim(1))
      bad_view(op, "4 coordinate + 2 shape widths (x " + dims_str(a.x) + ", h " + dims_str(a.h) + ") != hidden " +
                       std::to_string(H));
    expect_f32_vector(op, "ln_weight", a.ln_weight, H);
    expect_f32_vector(op, "ln_bias", a.ln_bias, H);
    if (!a.dst_row || !a.token_ids || !a.position_ids || !a.token_type_ids || !a.boxes)
      bad_view(op, "index arrays missing");
    if (a.out_f32.defined()) expect_f32_matrix_like(op, "out_f32", a.out_f32, a.out);
    expect_joint(op, a.joint, H);
    activate();
    cuda::text_embedding(a, cur_);
  }

  void patch_embedding(const PatchEmbeddingArgs& a) override {
    const char* op = "patch_embedding";
    if (a.batch < 0 || a.patch_size <= 0 || a.image_size % a.patch_size != 0)
      bad_view(op, "bad geometry: batch " + std::to_string(a.batch) + ", image " + std::to_string(a.image_size) +
                       ", patch " + std::to_string(a.patch_size));
    if (a.batch == 0) return;
    const int64_t G = a.image_size / a.patch_size, P = G * G;
    const int64_t k = int64_t{a.channels} * a.patch_size * a.patch_size;
    const int64_t H = a.out.dim(1);
    // patch_embed.proj.weight as the GEMM's [H, C*p*p] (the plan stores it reshaped; a raw [H, C, p, p] also works).
    TensorView W = a.weight;
    if (W.rank == 4) W = W.as_matrix(W.dim(0), W.dim(1) * W.dim(2) * W.dim(3));
    if (W.rank != 2 || W.dim(0) != H || W.dim(1) != k)
      bad_view(op, "weight " + dims_str(a.weight) + " is not [" + std::to_string(H) + ", " + std::to_string(k) + "]");
    expect_float_matrix(op, "out", a.out, H);
    expect_float_matrix(op, "patches", a.patches, k);
    expect_float_matrix(op, "proj", a.proj, H);
    if (a.patches.dim(0) != a.batch * P || a.proj.dim(0) != a.batch * P)
      bad_view(op, "patches " + dims_str(a.patches) + " / proj " + dims_str(a.proj) + " must have batch*P = " +
                       std::to_string(a.batch * P) + " rows");
    // The projection GEMM runs in the weight's dtype (FP32 in mixed plans): patches and proj are in it too.
    if (a.patches.dtype != W.dtype || a.proj.dtype != W.dtype)
      bad_view(op, "patches " + dims_str(a.patches) + " and proj " + dims_str(a.proj) + " must be in the weight's dtype " +
                       dtype_name(W.dtype));
    expect_f32_vector(op, "bias", a.bias, H);
    expect_f32_vector(op, "cls_token", a.cls_token, H);
    expect_f32_vector(op, "ln_weight", a.ln_weight, H);
    expect_f32_vector(op, "ln_bias", a.ln_bias, H);
    if (a.pos_embed.dtype != DType::kF32 || a.pos_embed.rank != 2 || a.pos_embed.dim(0) != P + 1 ||
        a.pos_embed.dim(1) != H)
      bad_view(op, "pos_embed " + dims_str(a.pos_embed) + " must be F32 [P+1, H]");
    if (!a.pixels || !a.cls_row) bad_view(op, "pixels / cls_row missing");
    if (a.out_f32.defined()) expect_f32_matrix_like(op, "out_f32", a.out_f32, a.out);
    expect_joint(op, a.joint, H);
    activate();
    if (side_pending_ && im2col_beside()) {
      // The patches do not depend on the text rows: im2col runs on a stream of its own forked where the bias cache's
      // side stream was (prepare_attention), joined before the projection GEMM.
      if (!side2_) {
        LRT_CUDA(cudaStreamCreateWithFlags(&side2_, cudaStreamNonBlocking));
        LRT_CUDA(cudaEventCreateWithFlags(&im2col_done_, cudaEventDisableTiming));
      }
      LRT_CUDA(cudaStreamWaitEvent(side2_, fork_, 0));
      cuda::im2col_patches(a, side2_);
      LRT_CUDA(cudaEventRecord(im2col_done_, side2_));
      LRT_CUDA(cudaStreamWaitEvent(cur_, im2col_done_, 0));
    } else {
      cuda::im2col_patches(a, cur_);
    }
    // proj = patches · Wᵀ WITHOUT the conv bias: visual_rows adds it in FP32 (cuda_ops.h), like the CPU twin.
    linear_runner().run({a.patches, W, TensorView(), a.proj, Epilogue::kNone}, cur_, cur_lane_, gemm_lanes());
    cuda::visual_rows(a, cur_);
  }

  // patch_embedding's im2col on a stream of its own beside the text embedding (LAYOUTRT_IM2COL_BESIDE=0: on the
  // forward's stream after it).
  static bool im2col_beside() {
    static const bool on = cuda::switch_on("LAYOUTRT_IM2COL_BESIDE");
    return on;
  }
  void linear(const LinearArgs& a) override {
    activate();
    linear_runner().run(a, cur_, cur_lane_, gemm_lanes());  // checks its views
  }

  // The views' checks of layer_norm; false where there is nothing to do (no rows).
  static bool check_layer_norm(const LayerNormArgs& a) {
    const char* op = "layer_norm";
    const int64_t H = a.x.dim(1);
    expect_float_matrix(op, "x", a.x, H);
    expect_float_matrix(op, "out", a.out, H);
    if (a.out.dim(0) != a.x.dim(0)) bad_view(op, "x " + dims_str(a.x) + " and out " + dims_str(a.out) + " differ in rows");
    if (a.residual.defined()) {
      expect_float_matrix(op, "residual", a.residual, H);
      if (a.residual.dim(0) != a.x.dim(0))
        bad_view(op, "residual " + dims_str(a.residual) + " and x " + dims_str(a.x) + " differ in rows");
    }
    expect_f32_vector(op, "weight", a.weight, H);
    expect_f32_vector(op, "bias", a.bias, H);
    if (a.x_bias.defined()) expect_f32_vector(op, "x_bias", a.x_bias, H);
    if (a.out_f32.defined()) expect_f32_matrix_like(op, "out_f32", a.out_f32, a.out);
    return a.x.dim(0) > 0;
  }
  void layer_norm(const LayerNormArgs& a) override {
    if (!check_layer_norm(a)) return;
    activate();
    cuda::layer_norm(a, cur_);
  }

  // LAYOUTRT_ATTENTION=reference|flash forces one attention kernel (A/B checks, benchmarks); default: flash where it
  // applies.
  static const std::string& attention_choice() {
    static const std::string choice = [] {
      const char* env = std::getenv("LAYOUTRT_ATTENTION");
      return std::string(env ? env : "auto");
    }();
    return choice;
  }
  // The relative biases of FP16/BF16 plans: precomputed once per forward into F16 blocks that all layers read
  // (default, "cache"), or looked up from the FP32 tables per score in every layer ("lookup"); see the file comment
  // of flash_attention.cu for the measurement. Mixed plans keep the biases FP32 (their policy): always "lookup".
  // LAYOUTRT_ATTENTION_BIAS=cache|lookup; LAYOUTRT_BIAS_CACHE_MB caps the cache (default 2048; larger → lookup).
  bool bias_cache_enabled() const {
    static const bool on = [] {
      const char* env = std::getenv("LAYOUTRT_ATTENTION_BIAS");
      return !(env && std::string(env) == "lookup");
    }();
    return on && attention_choice() != "reference" &&
           (precision_ == Precision::kFP16 || precision_ == Precision::kBF16);
  }
  static size_t bias_cache_limit() {
    static const size_t mb = [] {
      const char* env = std::getenv("LAYOUTRT_BIAS_CACHE_MB");
      return env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : size_t{2048};
    }();
    return mb << 20;
  }

  void prepare_attention(AttentionArgs& a) override {
    a.bias_cache = TensorView();
    const bool has_bias = a.bias1d.defined();
    choices_["attention_bias"] = has_bias ? "lookup" : "none";
    if (!has_bias || !bias_cache_enabled()) return;
    activate();
    // The cache kernel reads only the sequence metadata and the tables, so it runs on a side stream forked here and
    // joined before the next attention() (or the end of run_recorded): it overlaps whatever the caller queues in
    // between (the forward: the embeddings and layer 0's QKV GEMM). Leaves the cache undefined where it does not apply
    // (no 2D tables, head_dim > 64, scratch too small).
    if (!side_) {
      LRT_CUDA(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      LRT_CUDA(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
      LRT_CUDA(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
    }
    LRT_CUDA(cudaEventRecord(fork_, cur_));
    LRT_CUDA(cudaStreamWaitEvent(side_, fork_, 0));
    side_pending_ = true;
    side_recorded_ = false;
    side_joined_.clear();
    if (cuda::flash_prepare_bias(a, side_)) choices_["attention_bias"] = "cache";
  }
  // Stream s waits for the side stream's work (prepare_attention), once per stream: every lane's attention needs it.
  void join_side(cudaStream_t s) {
    if (!side_pending_) return;
    if (!side_recorded_) {
      LRT_CUDA(cudaEventRecord(join_, side_));
      side_recorded_ = true;
    }
    if (std::find(side_joined_.begin(), side_joined_.end(), s) != side_joined_.end()) return;
    LRT_CUDA(cudaStreamWaitEvent(s, join_, 0));
    side_joined_.push_back(s);
  }
  // The end of a forward: stream_ joined with the side stream (a capture must end joined), nothing pending.
  void finish_side() {
    join_side(stream_);
    side_pending_ = false;
  }
  std::map<std::string, std::string> kernel_choices() const override {
    std::map<std::string, std::string> c = Backend::kernel_choices();
    c.insert(choices_.begin(), choices_.end());
    // What the latest graph capture moved to launch completion (tests check the name filter still matches).
    if (graphs_.last_early_edges() >= 0) c["pdl_early_edges"] = std::to_string(graphs_.last_early_edges());
    return c;
  }

  void attention(const AttentionArgs& args) override {
    activate();
    join_side(cur_);
    if (args.first_seq < 0 || args.num_seqs < 0)
      bad_view("attention",
               "sequences [" + std::to_string(args.first_seq) + ", +" + std::to_string(args.num_seqs) + ")");
    // A part of the batch (a lane): the kernels see its sequences as a batch of their own, the bias cache from its
    // first sequence on (the cache is sequence-major, see flash_common.cuh cache_block).
    AttentionArgs a = args;
    if (a.first_seq > 0) {
      a.seq_begin += a.first_seq;
      if (a.query_rows) a.query_rows += a.first_seq;
      if (a.bias_cache.defined()) {
        const size_t per_seq = cuda::flash_bias_cache_bytes(1, a.max_seq_len, a.num_heads, a.head_dim);
        a.bias_cache = TensorView(static_cast<char*>(a.bias_cache.data) + a.first_seq * per_seq, DType::kF16,
                                  Device::kCUDA, {static_cast<int64_t>(a.num_seqs * per_seq / 2)});
      }
      a.first_seq = 0;
    }
    // The fused flash kernel (FP16/BF16, tensor cores, bias in-kernel or from the cache) where it applies; the
    // reference kernel (scores in shared memory) otherwise.
    const std::string& choice = attention_choice();
    if (choice != "reference" && cuda::flash_attention_supported(a)) {
      choices_["attention"] = "flash";
      choices_["attention_tail"] = cuda::flash_tail_form(a, lanes_active_ <= 1);
      return cuda::flash_attention(a, cur_, /*tail_ok=*/lanes_active_ <= 1);
    }
    if (choice == "flash")
      throw_error(ErrorCode::kUnsupported, "LAYOUTRT_ATTENTION=flash: the flash kernel does not support this case (",
                  dtype_name(a.qkv.dtype), ", head_dim ", a.head_dim, ")");
    choices_["attention"] = "reference";
    cuda::attention(a, cur_);  // checks its views
  }

  // The kernels of a one-lane forward's graph whose programmatic edges move to the upstream's launch completion
  // (graphs.cu), so that they are resident while the cuBLASLt GEMM before them runs: the LayerNorms, the attention's
  // inline-tail form (one CTA per SM by its resources, so resident early it cannot double up on an SM; its metadata,
  // key-valid bytes and first bias pieces read before its wait) and the visual rows behind the patch GEMM. H200, fp16,
  // T = 512 (bench/results/2026-12-04-h200-early-attention.md): B = 1 0.597 vs 0.608 – 0.610 ms. The one-warpgroup
  // attention of B = 2 – 4 stays out: resident early it made B = 2 0.963 vs 0.908 ms (four CTAs per SM, placed
  // wherever slots were free). LAYOUTRT_PDL_EARLY_ONLY: another '|'-separated list of kernel-name parts (A/B timing).
  // Read at every capture (tests switch it).
  const char* early_filter() {
    const char* env = std::getenv("LAYOUTRT_PDL_EARLY_ONLY");
    early_filter_ = env && *env ? env : "layer_norm|flash_wgmma_inline|visual_rows";
    return early_filter_.c_str();
  }
  void run_recorded(uint64_t key, int lanes, const std::function<void()>& ops) override {
    activate();
    // Ops start on stream_ even when an earlier forward threw with lanes open (its lane streams are abandoned).
    cur_ = stream_;
    cur_lane_ = 0;
    lanes_active_ = 0;
    max_lanes_ = 1;
    linear_runner();  // created (it allocates) before any capture
    if (!recorded_begin_) {
      LRT_CUDA(cudaEventCreate(&recorded_begin_));
      LRT_CUDA(cudaEventCreate(&recorded_end_));
    }
    LRT_CUDA(cudaEventRecord(recorded_begin_, stream_));
    // The side stream (prepare_attention) is joined inside the recorded ops: a capture must end joined.
    // One-lane forwards only: measured there; with two lanes B = 8 was the same and B = 32 1.0 / 1.7 % slower with it
    // in the one call that timed both.
    const bool root = cuda::switch_on("LAYOUTRT_GRAPH_ROOT") && lanes <= 1;
    choices_["graph_root"] = root ? "1" : "0";
    const std::function<void()> joined = [&] {
      if (root) {
        graph_root_kernel<<<1, 32, 0, stream_>>>();
        LRT_CUDA_LAUNCHED("graph_root");
      }
      ops();
      finish_side();
    };
    if (stage_timing_) {
      joined();  // events between ops: eager
    } else {
      // One-lane forwards: the LayerNorms behind a cuBLASLt GEMM resident while it runs (graphs.cu).
      graphs_.run(key, joined, stream_, [this] { return max_lanes_ == 1 ? early_filter() : nullptr; });
    }
    LRT_CUDA(cudaEventRecord(recorded_end_, stream_));
    recorded_pending_ = true;
  }
  double last_recorded_ms() override {
    if (!recorded_pending_) return -1;
    activate();
    LRT_CUDA(cudaEventSynchronize(recorded_end_));
    float ms = 0;
    LRT_CUDA(cudaEventElapsedTime(&ms, recorded_begin_, recorded_end_));
    return ms;
  }
  void enable_stage_timing(bool on) override {
    Backend::enable_stage_timing(on);
    stages_.reset();
  }
  void stage(const char* name) override {
    if (stage_timing_) stages_.mark(name, stream_);
  }

  // Lanes (ops/backend.h): lane 0 is stream_, lane i a stream of its own (made on first use, which is never inside a
  // capture: every shape key runs eagerly before it is recorded), forked from stream_ by begin_lanes and joined back
  // by end_lanes. Each lane's GEMMs get their own cuBLASLt workspace (LinearRunner). Under stage timing the lanes run
  // in turn on stream_ (the stage events are on stream_), with the same shapes.
  // Policy without LAYOUTRT_LANES: two lanes for FP16 / BF16 activations from kLaneMinRows rows on (≥ 2 sequences),
  // else one. Measured on an H200 (fp16 plan, compute ms, one lane → two, one call;
  // bench/results/2026-12-01-h200-lanes.md): B = 2 1.028 → 1.131 and B = 4 1.542 → 1.649 (slower: each lane's
  // grids are too small to fill the GPU alone, and the attention's split-KV shape takes over), B = 8 2.769 → 2.696,
  // B = 16 4.990 → 4.933, B = 32 9.733 → 9.573, 32 FUNSD-length documents padded 9.543 → 9.353 and packed
  // 6.079 → 5.928; three lanes were slower than two at B = 8 – 32; bf16 B = 4 1.532 → 1.634, B = 32 9.510 → 9.258.
  // FP32 plans (GEMM-bound) keep one lane: fp32 B = 8 49.96 → 50.65 ms, B = 32 185.7 → 186.0 with two. Mixed plans
  // (F16 GEMMs as fp16, the biases looked up per score) take two like fp16; their speed with lanes was not timed.
  static constexpr int64_t kLaneMinRows = 5000;
  int lanes_for(int64_t num_seqs, int64_t rows) const override {
    if (lanes_env_ > 0) return Backend::lanes_for(num_seqs, rows);
    const bool half =
        precision_ == Precision::kFP16 || precision_ == Precision::kBF16 || precision_ == Precision::kMixed;
    return half && num_seqs >= 2 && rows >= kLaneMinRows ? 2 : 1;
  }
  // Lanes run concurrently on their own streams unless there is one lane, or stage timing is on (its events time
  // the stages in turn on stream_, so the lanes then run one after the other there).
  bool lanes_concurrent(int n) const { return n > 1 && !stage_timing_; }
  // The GEMMs' lane count (GemmKey::lanes): the open lanes, also where they run in turn (stage timing), so a stage-timed
  // run multiplies with the forward's algorithms and does not time candidates of its own inside a stage; 1 outside.
  int gemm_lanes() const { return lanes_active_ > 1 ? lanes_active_ : 1; }
  void begin_lanes(int n) override {
    if (n < 1 || n > kMaxLanes) throw_error(ErrorCode::kInternal, "cuda backend: ", n, " lanes requested");
    Backend::begin_lanes(n);
    lanes_active_ = n;
    if (!lanes_concurrent(n)) return;
    max_lanes_ = std::max(max_lanes_, n);
    activate();
    if (static_cast<int>(lanes_.size()) < n - 1) {
      if (cuda::stream_capturing(stream_))
        throw_error(ErrorCode::kInternal, "cuda backend: a new lane stream requested inside a graph capture");
      if (!lanes_fork_) LRT_CUDA(cudaEventCreateWithFlags(&lanes_fork_, cudaEventDisableTiming));
      while (static_cast<int>(lanes_.size()) < n - 1) {
        Lane l;
        LRT_CUDA(cudaStreamCreateWithFlags(&l.stream, cudaStreamNonBlocking));
        LRT_CUDA(cudaEventCreateWithFlags(&l.join, cudaEventDisableTiming));
        lanes_.push_back(l);
      }
    }
    LRT_CUDA(cudaEventRecord(lanes_fork_, stream_));
    for (int i = 0; i < n - 1; ++i) LRT_CUDA(cudaStreamWaitEvent(lanes_[i].stream, lanes_fork_, 0));
  }
  void lane(int i) override {
    if (i < 0 || i >= std::max(lanes_active_, 1))
      throw_error(ErrorCode::kInternal, "cuda backend: lane ", i, " of ", lanes_active_);
    if (!lanes_concurrent(lanes_active_)) return;
    cur_ = i == 0 ? stream_ : lanes_[i - 1].stream;
    cur_lane_ = i;
  }
  void end_lanes() override {
    const int n = lanes_active_;
    lanes_active_ = 0;
    cur_ = stream_;
    cur_lane_ = 0;
    if (!lanes_concurrent(n)) return;
    activate();
    for (int i = 0; i < n - 1; ++i) {
      LRT_CUDA(cudaEventRecord(lanes_[i].join, lanes_[i].stream));
      LRT_CUDA(cudaStreamWaitEvent(stream_, lanes_[i].join, 0));
    }
  }
  std::map<std::string, double> stage_times_ms() override { return stages_.read_ms(); }

  void gather_rows(const GatherRowsArgs& a) override {
    const char* op = "gather_rows";
    const int64_t H = a.x.dim(1);
    if (!expect_gather(op, a.x, a.rows, a.n)) return;
    if ((a.out.dtype != DType::kF32 && a.out.dtype != a.x.dtype) || a.out.rank != 2 || a.out.dim(0) < a.n ||
        a.out.dim(1) != H || a.out.device != Device::kCUDA)
      bad_view(op, "out " + dims_str(a.out) + " must be F32 or " + dtype_name(a.x.dtype) + " [" + std::to_string(a.n) +
                       ", " + std::to_string(H) + "]");
    activate();
    cuda::gather_rows(a, cur_);
  }

  // The views' checks of gather_linear; false where there is nothing to do (no rows).
  static bool check_gather_linear(const GatherLinearArgs& a) {
    const char* op = "gather_linear";
    const int64_t H = a.x.dim(1);
    if (!expect_gather(op, a.x, a.rows, a.n)) return false;
    const int64_t N = a.weight.dim(0);
    expect_float_matrix(op, "weight", a.weight, H);
    if (a.bias.defined()) expect_f32_vector(op, "bias", a.bias, N);
    if (a.out.dtype != DType::kF32 || a.out.rank != 2 || a.out.dim(0) < a.n || a.out.dim(1) != N ||
        a.out.device != Device::kCUDA)
      bad_view(op, "out " + dims_str(a.out) + " must be F32 [" + std::to_string(a.n) + ", " + std::to_string(N) + "]");
    return true;
  }
  void gather_linear(const GatherLinearArgs& a) override {
    if (!check_gather_linear(a)) return;
    activate();
    // TF32 plans keep the GEMM (their linears round the inputs to TF32; this kernel would not).
    if (precision_ != Precision::kTF32 && cuda::gather_linear(a, cur_)) return;
    Backend::gather_linear(a);
  }

  // One kernel where cuda::layer_norm_head applies (not in TF32 plans, as gather_linear; LAYOUTRT_HEAD_LN=0: the two
  // ops, for A/B runs).
  void layer_norm_gather_linear(const LayerNormArgs& ln, const GatherLinearArgs& head) override {
    const bool ln_rows = check_layer_norm(ln), head_rows = check_gather_linear(head);
    activate();
    const bool fused = ln_rows && head_rows && precision_ != Precision::kTF32 && cuda::switch_on("LAYOUTRT_HEAD_LN") &&
                       cuda::layer_norm_head(ln, head, cur_);
    choices_["head_layer_norm"] = fused ? "1" : "0";
    if (!fused) Backend::layer_norm_gather_linear(ln, head);
  }

 private:
  // Every call that touches the device first makes ours current (a thread may drive contexts on several GPUs).
  void activate() const { LRT_CUDA(cudaSetDevice(device_)); }
  // Created on first use: the Engine's own backend only uploads weights and never needs cuBLASLt or its workspace.
  cuda::LinearRunner& linear_runner() {
    if (!linear_) {
      linear_ = cuda::LinearRunner::create(precision_ == Precision::kTF32);
      // Before it times GEMM candidates (first use of a shape, never inside a capture) the runner waits for every
      // lane and for the side stream (prepare_attention's bias cache, which can run beside the first layer's QKV
      // GEMM): the timings must not share the GPU with other kernels of ours.
      linear_->set_quiesce([this] {
        LRT_CUDA(cudaStreamSynchronize(stream_));
        if (side_) LRT_CUDA(cudaStreamSynchronize(side_));
        if (side2_) LRT_CUDA(cudaStreamSynchronize(side2_));
        for (const Lane& l : lanes_) LRT_CUDA(cudaStreamSynchronize(l.stream));
      });
    }
    return *linear_;
  }

  int device_;
  Precision precision_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t side_ = nullptr;  // prepare_attention's work, forked from and joined back into stream_
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  std::string early_filter_;
  cudaStream_t side2_ = nullptr;  // patch_embedding's im2col beside the text embedding (forked at fork_)
  cudaEvent_t im2col_done_ = nullptr;
  bool side_pending_ = false, side_recorded_ = false;
  std::vector<cudaStream_t> side_joined_;  // streams that waited for the side stream's work this forward
  // Lanes beyond lane 0 (= stream_); cur_ is the stream ops go to (stream_ outside lanes).
  struct Lane {
    cudaStream_t stream = nullptr;
    cudaEvent_t join = nullptr;
  };
  std::vector<Lane> lanes_;
  int max_lanes_ = 1;  // the most concurrent lanes opened since run_recorded began
  cudaEvent_t lanes_fork_ = nullptr;
  int lanes_active_ = 0, cur_lane_ = 0;
  cudaStream_t cur_ = nullptr;
  // Pinned staging ring for small host-to-device copies (copy_to_device).
  static constexpr size_t kStageBytes = size_t{4} << 20, kStageCopyBytes = size_t{1} << 20;
  void* stage_ = nullptr;
  size_t stage_used_ = 0;
  std::map<std::string, std::string> choices_;  // see kernel_choices
  std::unique_ptr<cuda::LinearRunner> linear_;
  cuda::GraphCache graphs_;
  cuda::StageEvents stages_;
  cudaEvent_t recorded_begin_ = nullptr, recorded_end_ = nullptr;  // around the last run_recorded
  bool recorded_pending_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, Precision precision) {
  return std::make_unique<CudaBackend>(device, precision);
}

bool cuda_device_available() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  return count > 0;
}

}  // namespace layoutrt

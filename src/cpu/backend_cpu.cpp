// The CPU backend: host memory, FP32 compute (weights of any stored dtype are widened on load).
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "cpu/cpu_ops.h"
#include "layoutrt/error.h"

namespace layoutrt {

namespace {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  Device device() const override { return Device::kCPU; }
  std::string name() const override {
    return "CPU (" + std::to_string(omp_get_max_threads()) + " threads" +
#ifdef LAYOUTRT_WITH_BLAS
           ", OpenBLAS)";
#else
           ", built-in GEMM)";
#endif
  }
  void* allocate(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw_error(ErrorCode::kOutOfMemory, "CPU backend: cannot allocate ", bytes, " bytes");
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void fill_nan(const TensorView& t) override {
    if (t.dtype != DType::kF32) throw_error(ErrorCode::kInternal, "fill_nan: CPU buffers are F32");
    std::fill(t.as<float>(), t.as<float>() + t.numel(), std::numeric_limits<float>::quiet_NaN());
  }
  void synchronize() override {}
  DType weight_dtype(DType stored) const override { return dtype_is_float(stored) ? DType::kF32 : stored; }
  DType activation_dtype(Precision) const override { return DType::kF32; }
  size_t attention_scratch_bytes(int64_t, int64_t max_seq_len, int, int head_dim) const override {
    return cpu::attention_scratch_bytes(max_seq_len, head_dim);
  }

  void text_embedding(const TextEmbeddingArgs& a) override { cpu::text_embedding(a); }
  void patch_embedding(const PatchEmbeddingArgs& a) override { cpu::patch_embedding(a); }
  void linear(const LinearArgs& a) override { cpu::linear(a); }
  void layer_norm(const LayerNormArgs& a) override { cpu::layer_norm(a); }
  void attention(const AttentionArgs& a) override { cpu::attention(a); }
  void gather_rows(const GatherRowsArgs& a) override { cpu::gather_rows(a); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace layoutrt

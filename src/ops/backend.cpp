#include "ops/backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "layoutrt/error.h"

namespace layoutrt {

Backend::Backend() {
  if (const char* env = std::getenv("LAYOUTRT_LANES"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > kMaxLanes)
      throw_error(ErrorCode::kInvalidArgument, "LAYOUTRT_LANES=", env, ": expected a lane count 1 .. ", kMaxLanes);
    lanes_env_ = static_cast<int>(n);
  }
}

std::shared_ptr<void> Backend::allocate_host(size_t bytes) {
  const size_t alloc = (bytes + 63) / 64 * 64 + 64;
  void* p = std::aligned_alloc(64, alloc);
  if (!p) throw_error(ErrorCode::kOutOfMemory, "cannot allocate ", bytes, " bytes of host memory");
  std::memset(p, 0, alloc);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

int Backend::lanes_for(int64_t num_seqs, int64_t /*rows*/) const {
  return static_cast<int>(std::clamp<int64_t>(lanes_env_ > 0 ? lanes_env_ : 1, 1, std::max<int64_t>(num_seqs, 1)));
}

void Backend::enable_stage_timing(bool on) {
  stage_timing_ = on;
  stage_ms_.clear();
  open_stage_.clear();
}

void Backend::stage(const char* name) {
  if (!stage_timing_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!open_stage_.empty())
    stage_ms_[open_stage_] += std::chrono::duration<double, std::milli>(now - open_since_).count();
  open_stage_ = name ? name : "";
  open_since_ = now;
}

std::map<std::string, double> Backend::stage_times_ms() { return stage_ms_; }

void Backend::run_recorded(uint64_t /*key*/, int /*lanes*/, const std::function<void()>& ops) {
  const auto t0 = std::chrono::steady_clock::now();
  ops();
  last_recorded_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::map<std::string, std::string> Backend::kernel_choices() const {
  if (lanes_used_ == 0) return {};
  std::map<std::string, std::string> c{{"lanes", std::to_string(lanes_used_)}};
  if (!last_layer_rows_.empty()) c["last_layer_rows"] = last_layer_rows_;
  return c;
}

double Backend::last_recorded_ms() { return last_recorded_ms_; }

void Backend::gather_linear(const GatherLinearArgs& a) {
  if (a.n == 0) return;
  const TensorView rows = a.scratch.rows(0, a.n);
  gather_rows({a.x, a.rows, a.n, rows});
  linear({rows, a.weight, a.bias, a.out.rows(0, a.n), a.epilogue});
}

void Backend::layer_norm_gather_linear(const LayerNormArgs& ln, const GatherLinearArgs& head) {
  layer_norm(ln);
  gather_linear(head);
}

}  // namespace layoutrt

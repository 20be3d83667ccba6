#include "ops/backend.h"

namespace layoutrt {

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

void Backend::run_recorded(uint64_t /*key*/, const std::function<void()>& ops) {
  const auto t0 = std::chrono::steady_clock::now();
  ops();
  last_recorded_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double Backend::last_recorded_ms() { return last_recorded_ms_; }

}  // namespace layoutrt

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

}  // namespace layoutrt

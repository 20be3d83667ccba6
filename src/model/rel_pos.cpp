#include "model/rel_pos.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "layoutrt/error.h"

namespace layoutrt {

int relative_position_bucket(int64_t relative_position, int num_buckets, int max_distance) {
  const int nb = num_buckets / 2;
  int ret = relative_position > 0 ? nb : 0;
  const int64_t n = std::llabs(relative_position);
  const int max_exact = nb / 2;
  if (n < max_exact) return ret + static_cast<int>(n);
  // torch: n.float() / max_exact -> float32 true division by an int scalar.
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const float log_ratio = std::log(ratio);  // float overload: logf
  // math.log(max_distance / max_exact) is a Python double; torch casts the scalar operand to float32.
  const float log_range = static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact));
  const float scaled = log_ratio / log_range * static_cast<float>(nb - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(scaled), nb - 1);  // .to(long) truncates
  return ret + static_cast<int>(large);
}

std::vector<int32_t> relative_position_bucket_table(int max_abs_distance, int num_buckets, int max_distance) {
  std::vector<int32_t> t(2 * static_cast<size_t>(max_abs_distance) + 1);
  for (int r = -max_abs_distance; r <= max_abs_distance; ++r)
    t[r + max_abs_distance] = relative_position_bucket(r, num_buckets, max_distance);
  return t;
}

Tensor gather_bias_by_distance(const Tensor& weight, const Tensor& buckets) {
  if (weight.rank() != 2 || weight.dtype() != DType::kF32)
    throw_error(ErrorCode::kInternal, "gather_bias_by_distance: weight must be F32 [heads, bins], got ",
                dtype_name(weight.dtype()), " ", shape_str(weight.shape()));
  if (buckets.rank() != 1 || buckets.dtype() != DType::kI32)
    throw_error(ErrorCode::kInternal, "gather_bias_by_distance: buckets must be I32 [2R+1]");
  const int64_t heads = weight.dim(0), bins = weight.dim(1), n = buckets.dim(0);
  Tensor out(DType::kF32, {heads, n});
  const auto* w = weight.data_as<float>();
  const auto* b = buckets.data_as<int32_t>();
  auto* o = out.mutable_data_as<float>();
  for (int64_t i = 0; i < n; ++i)
    if (b[i] < 0 || b[i] >= bins)
      throw_error(ErrorCode::kFormat, "relative-position bucket table entry ", i, " is ", b[i], ", outside 0..",
                  bins - 1);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i) o[h * n + i] = w[h * bins + b[i]];
  return out;
}

}  // namespace layoutrt

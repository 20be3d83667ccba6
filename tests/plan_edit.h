// Test helper: a copy of a plan with its JSON header edited (tensors unchanged, checksum recomputed by write_plan),
// to reach the checks behind the checksum.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/plan_format.h"

namespace layoutrt::test {

template <class Edit>
std::string edited_plan(const std::string& src, const std::string& dst, Edit edit) {
  PlanFile p = PlanFile::open(src);
  nlohmann::json h = p.header();
  h.erase("tensors");
  edit(h);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : p.tensors()) tensors.emplace_back(t.name, p.tensor(t.name));
  write_plan(dst, h, tensors);
  return dst;
}

}  // namespace layoutrt::test

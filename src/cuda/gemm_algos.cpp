// GEMM algorithm records in plans: export / import of the process-wide GEMM algorithm table (gemm_algos.h).
#include "cuda/gemm_algos.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/gemm_sm90.h"
#include "ops/backend.h"

namespace layoutrt::cuda {

GemmAlgoTable& GemmAlgoTable::instance() {
  static GemmAlgoTable t;
  return t;
}

uint64_t begin_gemm_epoch() {
  GemmAlgoTable& t = GemmAlgoTable::instance();
  std::lock_guard<std::mutex> lock(t.mu);
  return ++t.epoch;
}

namespace {

nlohmann::json device_identity(int device) {
  cudaDeviceProp prop{};
  LRT_CUDA(cudaGetDeviceProperties(&prop, device));
  return {{"device", std::string(prop.name)},
          {"sm_count", prop.multiProcessorCount},
          {"compute_capability", std::to_string(prop.major) + "." + std::to_string(prop.minor)},
          {"cublaslt_version", static_cast<uint64_t>(cublasLtGetVersion())}};
}

std::string to_hex(const cublasLtMatmulAlgo_t& a) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  const auto* p = reinterpret_cast<const unsigned char*>(&a);
  for (size_t i = 0; i < sizeof(a); ++i) s += digits[p[i] >> 4], s += digits[p[i] & 15];
  return s;
}

bool from_hex(const std::string& s, cublasLtMatmulAlgo_t& a) {
  if (s.size() != 2 * sizeof(a)) return false;
  auto* p = reinterpret_cast<unsigned char*>(&a);
  auto nibble = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  for (size_t i = 0; i < sizeof(a); ++i) {
    const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    p[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

// "NAME (N SMs, sm_X.Y, cuBLASLt V)"; fields of the wrong type read as "?".
std::string describe(const nlohmann::json& id) {
  auto field = [&](const char* f) {
    if (!id.contains(f)) return std::string("?");
    const nlohmann::json& v = id.at(f);
    return v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : std::string("?");
  };
  return field("device") + " (" + field("sm_count") + " SMs, sm_" + field("compute_capability") + ", cuBLASLt " +
         field("cublaslt_version") + ")";
}

}  // namespace

std::string export_gemm_algorithms(int device, uint64_t since_epoch) {
  nlohmann::json j = device_identity(device);
  nlohmann::json list = nlohmann::json::array();
  GemmAlgoTable& t = GemmAlgoTable::instance();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& [dk, e] : t.entries) {
    if (dk.first != device || e.used_epoch < since_epoch) continue;
    const GemmKey& k = dk.second;
    nlohmann::json a = {{"m", k.m},       {"n", k.n},
                        {"k", k.k},       {"dtype", dtype_name(k.dtype)},
                        {"tf32", k.tf32}, {"bias_epilogue", k.bias_epilogue},
                        {"gelu", k.gelu}, {"align", {k.align_x, k.align_w, k.align_y}},
                        {"lanes", k.lanes},     {"algo", to_hex(e.algo)}};
    if (e.sm90_config >= 0) a["sm90"] = sm90_gemm_config_name(e.sm90_config);
    list.push_back(a);
  }
  j["algorithms"] = list;
  return j.dump();
}

std::string import_gemm_algorithms(int device, const std::string& text) {
  const nlohmann::json here = device_identity(device);
  nlohmann::json rec;
  try {
    rec = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return std::string("warning: the plan's GEMM algorithm record is not JSON (") + e.what() +
           "): algorithms are timed on first use";
  }
  if (!rec.is_object() || !rec.value("algorithms", nlohmann::json::array()).is_array())
    return "warning: the plan's GEMM algorithm record is not an object with an algorithms list: algorithms are "
           "timed on first use";
  for (const char* f : {"device", "sm_count", "compute_capability", "cublaslt_version"})
    if (!rec.contains(f) || rec.at(f) != here.at(f))
      return "warning: the plan's GEMM algorithms were tuned on " + describe(rec) + "; this is " + describe(here) +
             ": re-tuned on first use (rebuild the plan on this GPU to store them)";
  int used = 0, bad = 0, kept = 0;
  GemmAlgoTable& t = GemmAlgoTable::instance();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& a : rec.value("algorithms", nlohmann::json::array())) {
    try {
      GemmKey k;
      k.m = a.at("m").get<int64_t>();
      k.n = a.at("n").get<int64_t>();
      k.k = a.at("k").get<int64_t>();
      const auto dt = dtype_from_name(a.at("dtype").get<std::string>());
      k.tf32 = a.at("tf32").get<bool>();
      k.bias_epilogue = a.at("bias_epilogue").get<bool>();
      k.gelu = a.value("gelu", false);  // absent in plans made before the Hopper GEMMs were timed
      const auto al = a.at("align");
      k.align_x = al.at(0).get<uint16_t>(), k.align_w = al.at(1).get<uint16_t>(), k.align_y = al.at(2).get<uint16_t>();
      const int lanes = a.value("lanes", 1);  // absent in plans made before GEMMs were timed per lane count
      k.lanes = static_cast<uint8_t>(lanes);
      GemmAlgoEntry e;
      if (!dt || k.m <= 0 || k.n <= 0 || k.k <= 0 || lanes < 1 || lanes > Backend::kMaxLanes ||
          !from_hex(a.at("algo").get<std::string>(), e.algo)) {
        ++bad;
        continue;
      }
      // Fused-GELU keys, and only they, name a Hopper configuration this build has (only it runs them).
      if (a.contains("sm90")) e.sm90_config = sm90_gemm_config_by_name(a.at("sm90").get<std::string>());
      if (k.gelu != (e.sm90_config >= 0)) {
        ++bad;
        continue;
      }
      k.dtype = *dt;
      e.from_plan = true;
      // A key this process already chose for keeps its choice (contexts of one process compute identically).
      const auto [it, inserted] = t.entries.emplace(std::make_pair(device, k), e);
      if (inserted || (it->second.sm90_config == e.sm90_config &&
                       std::memcmp(&it->second.algo, &e.algo, sizeof(e.algo)) == 0))
        ++used;
      else ++kept;
    } catch (const nlohmann::json::exception&) {
      ++bad;
    }
  }
  std::string s = std::to_string(used) + " GEMM algorithms from the plan (tuned on " + describe(rec) + ")";
  if (kept) s += "; " + std::to_string(kept) + " keys keep this process's earlier choice";
  if (bad) s = "warning: " + s + "; " + std::to_string(bad) + " unreadable entries ignored";
  return s;
}

}  // namespace layoutrt::cuda

namespace layoutrt {

uint64_t cuda_begin_gemm_recording() { return cuda::begin_gemm_epoch(); }
std::string cuda_export_gemm_algorithms(int device, uint64_t since) {
  return cuda::export_gemm_algorithms(device, since);
}
std::string cuda_import_gemm_algorithms(int device, const std::string& json) {
  return cuda::import_gemm_algorithms(device, json);
}

}  // namespace layoutrt

// CUPTI activity tracing behind KernelTrace (kernel_trace.h). CUPTI hands records over in buffers we allocate
// (buffer_requested) and get back full (buffer_completed, from CUPTI's thread or from cuptiActivityFlushAll); the
// records are copied out there, under one mutex, into `g.records`.
#include "cuda/kernel_trace.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "layoutrt/error.h"

#if defined(LAYOUTRT_WITH_CUPTI)
#include <cuda_runtime.h>
#include <cupti_activity.h>
#include <cupti_result.h>
#include <cupti_version.h>
#endif

namespace layoutrt::cuda {

#if defined(LAYOUTRT_WITH_CUPTI)
namespace {

// The CUPTI entry points we use, resolved from the library once.
struct Cupti {
  void* handle = nullptr;
  std::string path;
  uint32_t version = 0;
  CUptiResult (*get_version)(uint32_t*) = nullptr;
  CUptiResult (*get_result_string)(CUptiResult, const char**) = nullptr;
  CUptiResult (*register_callbacks)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc) = nullptr;
  CUptiResult (*enable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*disable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*flush_all)(uint32_t) = nullptr;
  CUptiResult (*next_record)(uint8_t*, size_t, CUpti_Activity**) = nullptr;
  CUptiResult (*dropped)(CUcontext, uint32_t, size_t*) = nullptr;
};

struct State {
  std::mutex mu;
  Cupti api;
  bool loaded = false, registered = false, active = false;
  std::vector<KernelRecord> records;
  uint64_t dropped = 0;
};
State& g() {
  static State s;
  return s;
}

constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET};
constexpr size_t kBufferBytes = size_t{8} << 20;

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* msg = nullptr;
  if (g().api.get_result_string) g().api.get_result_string(r, &msg);
  throw_error(ErrorCode::kUnsupported, "kernel trace: ", what, " failed: ", msg ? msg : "CUPTI error ",
              msg ? "" : std::to_string(static_cast<int>(r)), " (CUPTI ", g().api.path, ")");
}

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

// The fields every record kind we keep has.
template <typename R>
void copy_common(KernelRecord& k, const R* r, KernelRecord::Kind kind, std::string name) {
  k.kind = kind;
  k.name = std::move(name);
  k.start_ns = r->start, k.end_ns = r->end;
  k.stream = r->streamId, k.correlation = r->correlationId, k.graph_node = r->graphNodeId;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  State& s = g();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    CUpti_Activity* rec = nullptr;
    while (s.api.next_record(buffer, valid, &rec) == CUPTI_SUCCESS) {
      KernelRecord k;
      switch (rec->kind) {
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
        case CUPTI_ACTIVITY_KIND_KERNEL: {
          const auto* r = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
          copy_common(k, r, KernelRecord::Kind::kKernel, demangle(r->name));
          k.grid[0] = r->gridX, k.grid[1] = r->gridY, k.grid[2] = r->gridZ;
          k.block[0] = r->blockX, k.block[1] = r->blockY, k.block[2] = r->blockZ;
          k.cluster[0] = static_cast<int32_t>(r->clusterX), k.cluster[1] = static_cast<int32_t>(r->clusterY);
          k.cluster[2] = static_cast<int32_t>(r->clusterZ);
          k.registers = r->registersPerThread;
          k.static_smem = r->staticSharedMemory, k.dynamic_smem = r->dynamicSharedMemory;
          break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
          const auto* r = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
          copy_common(k, r, KernelRecord::Kind::kMemcpy, "memcpy");
          k.bytes = r->bytes;
          break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
          const auto* r = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
          copy_common(k, r, KernelRecord::Kind::kMemset, "memset");
          k.bytes = r->bytes;
          break;
        }
        default: continue;
      }
      if (s.active) s.records.push_back(std::move(k));
    }
    size_t dropped = 0;
    if (s.api.dropped && s.api.dropped(nullptr, 0, &dropped) == CUPTI_SUCCESS) s.dropped += dropped;
  }
  std::free(buffer);
}

// Candidate library paths, in order (see kernel_trace.h).
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* e = std::getenv("LAYOUTRT_CUPTI_LIB"); e && *e) out.push_back(e);
  out.push_back("libcupti.so.13");
  out.push_back("libcupti.so");
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cudaGetDeviceCount), &info) && info.dli_fname) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(info.dli_fname).parent_path();
    for (const fs::path& d : {dir, dir.parent_path() / "extras/CUPTI/lib64", dir.parent_path() / "lib64"})
      for (const char* n : {"libcupti.so.13", "libcupti.so"}) out.push_back((d / n).string());
  }
  return out;
}

template <typename F>
void resolve(void* h, F& fn, const char* name, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(h, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
}

void load_locked(State& s) {
  if (s.loaded) return;
  std::string tried;
  for (const std::string& c : candidates()) {
    s.api.handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (s.api.handle) {
      s.api.path = c;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  if (!s.api.handle)
    throw_error(ErrorCode::kUnsupported, "kernel trace: CUPTI not found (tried ", tried,
                "); set LAYOUTRT_CUPTI_LIB to libcupti.so's path");
  std::string missing;
  Cupti& a = s.api;
  resolve(a.handle, a.get_version, "cuptiGetVersion", missing);
  resolve(a.handle, a.get_result_string, "cuptiGetResultString", missing);
  resolve(a.handle, a.register_callbacks, "cuptiActivityRegisterCallbacks", missing);
  resolve(a.handle, a.enable, "cuptiActivityEnable", missing);
  resolve(a.handle, a.disable, "cuptiActivityDisable", missing);
  resolve(a.handle, a.flush_all, "cuptiActivityFlushAll", missing);
  resolve(a.handle, a.next_record, "cuptiActivityGetNextRecord", missing);
  resolve(a.handle, a.dropped, "cuptiActivityGetNumDroppedRecords", missing);
  if (!missing.empty())
    throw_error(ErrorCode::kUnsupported, "kernel trace: ", a.path, " lacks ", missing);
  check(a.get_version(&a.version), "cuptiGetVersion");
  // The records are read with this build's structs (CUpti_ActivityKernel10, ...): an older library writes older,
  // shorter records.
  if (a.version < CUPTI_API_VERSION)
    throw_error(ErrorCode::kUnsupported, "kernel trace: ", a.path, " is CUPTI API version ", a.version,
                "; this build reads records of version ", CUPTI_API_VERSION, " or newer");
  s.loaded = true;
}

}  // namespace

KernelTrace::KernelTrace() {
  State& s = g();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.active) throw_error(ErrorCode::kInvalidArgument, "kernel trace: one is already recording");
  load_locked(s);
  if (!s.registered) {
    check(s.api.register_callbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
    s.registered = true;
  }
  for (CUpti_ActivityKind k : kKinds) {
    const CUptiResult r = s.api.enable(k);
    if (r != CUPTI_SUCCESS) {
      for (CUpti_ActivityKind d : kKinds) s.api.disable(d);  // none left half on
      check(r, "cuptiActivityEnable");
    }
  }
  s.records.clear();
  s.dropped = 0;
  s.active = true;
}

KernelTrace::~KernelTrace() {
  State& s = g();
  for (CUpti_ActivityKind k : kKinds) s.api.disable(k);
  s.api.flush_all(1);  // hands the open buffers back while the records are still dropped below
  std::lock_guard<std::mutex> lock(s.mu);
  s.active = false;
  s.records.clear();
}

const std::string& KernelTrace::library() const { return g().api.path; }
uint32_t KernelTrace::cupti_version() const { return g().api.version; }

void KernelTrace::discard() { take(nullptr); }

std::vector<KernelRecord> KernelTrace::take(uint64_t* dropped) {
  State& s = g();
  check(s.api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<KernelRecord> out;
  out.swap(s.records);
  if (dropped) *dropped = s.dropped;
  s.dropped = 0;
  std::stable_sort(out.begin(), out.end(),
                   [](const KernelRecord& a, const KernelRecord& b) { return a.start_ns < b.start_ns; });
  return out;
}

#else  // no CUPTI headers at build time

namespace {
[[noreturn]] void no_cupti() {
  throw_error(ErrorCode::kUnsupported, "kernel trace: this build has no CUPTI (cupti_activity.h was not found when "
              "it was configured)");
}
}  // namespace

KernelTrace::KernelTrace() { no_cupti(); }
KernelTrace::~KernelTrace() = default;
const std::string& KernelTrace::library() const { no_cupti(); }
uint32_t KernelTrace::cupti_version() const { no_cupti(); }
void KernelTrace::discard() { no_cupti(); }
std::vector<KernelRecord> KernelTrace::take(uint64_t*) { no_cupti(); }

#endif

std::string kernel_trace_csv(std::vector<KernelRecord> records) {
  std::stable_sort(records.begin(), records.end(),
                   [](const KernelRecord& a, const KernelRecord& b) { return a.start_ns < b.start_ns; });
  std::ostringstream o;
  o << "kind,name,start_us,end_us,duration_us,stream,graph_node,grid,block,cluster,registers,static_smem,"
       "dynamic_smem,bytes\n";
  const uint64_t t0 = records.empty() ? 0 : records.front().start_ns;
  auto us = [](int64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1e3);
    return std::string(buf);
  };
  auto dim = [](const int32_t* d) {
    return std::to_string(d[0]) + "." + std::to_string(d[1]) + "." + std::to_string(d[2]);
  };
  for (const KernelRecord& r : records) {
    const char* kind = r.kind == KernelRecord::Kind::kKernel   ? "kernel"
                       : r.kind == KernelRecord::Kind::kMemcpy ? "memcpy"
                                                               : "memset";
    std::string name;
    for (char ch : r.name) name += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    o << kind << ",\"" << name << "\"," << us(static_cast<int64_t>(r.start_ns - t0)) << ","
      << us(static_cast<int64_t>(r.end_ns - t0)) << ","
      << us(static_cast<int64_t>(r.end_ns) - static_cast<int64_t>(r.start_ns)) << "," << r.stream << ","
      << r.graph_node << "," << dim(r.grid) << "," << dim(r.block) << "," << dim(r.cluster) << "," << r.registers
      << "," << r.static_smem << "," << r.dynamic_smem << "," << r.bytes << "\n";
  }
  return o.str();
}

}  // namespace layoutrt::cuda

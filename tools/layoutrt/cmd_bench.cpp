// layoutrt bench --plan FILE --batch 1,2,4,8 [--text-tokens 512] [--warmup N] [--iters N] [--lengths FILE]
//                [--json OUT.json] [--markdown OUT.md] [--pageable-inputs]
//
// Latency and throughput of ExecutionContext::run on synthetic inputs. A tool, not a test: it prints numbers and never
// judges them. Two times per run() call:
//  - compute (median_ms, p90_ms, p99_ms, seq/s, TFLOP/s): the forward proper, first op to last, inputs already
//    validated and on the device (ExecutionContext::compute_ms: CUDA events around it, or the CPU's clock) — what
//    torch_baseline.py times for PyTorch (inputs on the GPU before its events), and what trtexec calls GPU compute time;
//  - end to end (e2e_*): the whole call, input validation, host->device copies, the forward and the copies back
//    (CUDA events on the context's stream when it has one, else std::chrono::steady_clock); pixel_values in
//    Engine::host_tensor's memory (page-locked on CUDA), as a serving process would keep them, unless
//    --pageable-inputs.
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli_common.h"
#include "runtime/synthetic.h"

#ifdef LAYOUTRT_WITH_CUDA
#include "cuda/flash_attention_sm90.h"
#include "cuda/kernel_trace.h"
#include <cuda_runtime.h>
#endif

namespace layoutrt::cli {

namespace {

// The shapes the FLOP count needs, from the plan header's config (ModelInfo lacks intermediate_size / patch_size).
struct ModelShape {
  int64_t hidden = 0, layers = 0, intermediate = 0, labels = 0;
  int64_t patch = 16, image = 224, channels = 3, visual_tokens = 0;
  bool text_embed = true, visual_embed = true;
  HeadKind head = HeadKind::kBase;
};

ModelShape model_shape(const nlohmann::json& header, const ModelInfo& info) {
  const nlohmann::json& c = header.at("model").at("config");
  ModelShape s;
  s.hidden = info.hidden_size;
  s.layers = info.num_layers;
  s.intermediate = c.value("intermediate_size", int64_t{4} * info.hidden_size);
  s.labels = info.num_labels;
  s.patch = c.value("patch_size", int64_t{16});
  s.image = info.image_size;
  s.channels = info.num_channels;
  s.visual_tokens = info.visual_tokens;
  s.text_embed = info.text_embed;
  s.visual_embed = info.visual_embed;
  s.head = info.head;
  return s;
}

// Model FLOPs of one sequence with T text tokens (a multiply-add counts 2), the dense work whether or not some
// tokens are padding. With L = T + V tokens (V = visual tokens: patches + CLS), hidden H, FFN width I:
//   per layer   2·L·H·3H (QKV) + 2·L·L·H (Q·Kᵀ) + 2·L·L·H (P·V) + 2·L·H·H (output projection) + 4·L·H·I (FFN)
//   × layers
//   + patch embedding 2·P·(C·p·p)·H   (P = (S/p)² patches, C channels, p patch size)
//   + head: token classification 2·T·H·labels (or 2·T·(H·H + H·labels) for the dense+tanh head at ≥ 10 labels),
//           sequence classification 2·(H·H + H·labels), question answering 2·L·(H·H + 2H), base 0.
// Embedding lookups, LayerNorms, softmax, GELU and the bias gathers are not counted (memory-bound, O(L·H)).
// layoutlmv3-base at T = 512: L = 709, 139.2 GFLOP per sequence (the spec's check value).
double flops_per_sequence(const ModelShape& m, int64_t T) {
  const double H = static_cast<double>(m.hidden), I = static_cast<double>(m.intermediate);
  const double V = m.visual_embed ? static_cast<double>(m.visual_tokens) : 0.0;
  const double Tt = m.text_embed ? static_cast<double>(T) : 0.0;
  const double L = Tt + V;
  const double per_layer = 2 * L * H * 3 * H + 2 * L * L * H + 2 * L * L * H + 2 * L * H * H + 4 * L * H * I;
  double total = per_layer * static_cast<double>(m.layers);
  if (m.visual_embed) {
    const double P = static_cast<double>((m.image / m.patch) * (m.image / m.patch));
    total += 2 * P * static_cast<double>(m.channels * m.patch * m.patch) * H;
  }
  const double C = static_cast<double>(m.labels);
  switch (m.head) {
    case HeadKind::kTokenClassification:
      total += m.labels < 10 ? 2 * Tt * H * C : 2 * Tt * (H * H + H * C);
      break;
    case HeadKind::kSequenceClassification: total += 2 * (H * H + H * C); break;
    case HeadKind::kQuestionAnswering: total += 2 * L * (H * H + 2 * H); break;
    case HeadKind::kBase: break;
  }
  return total;
}

// Per-document real token counts, whitespace separated; '#' starts a comment.
std::vector<int64_t> read_lengths(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw_error(ErrorCode::kNotFound, "--lengths ", path, ": cannot open");
  std::vector<int64_t> out;
  std::string line;
  int line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream s(line);
    std::string word;
    while (s >> word) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || v < 1)
        throw_error(ErrorCode::kInvalidArgument, "--lengths ", path, ":", line_no, ": \"", word,
                    "\" is not a token count >= 1");
      out.push_back(v);
    }
  }
  if (out.empty()) throw_error(ErrorCode::kInvalidArgument, "--lengths ", path, ": no token counts in the file");
  return out;
}

// Nearest-rank percentile of sorted values (p in 0..100).
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// The command line as typed (from /proc/self/cmdline; "layoutrt bench" where that is unreadable).
std::string command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (raw.empty()) return "layoutrt bench";
  std::string out;
  size_t start = 0;
  while (start < raw.size()) {
    size_t end = raw.find('\0', start);
    if (end == std::string::npos) end = raw.size();
    std::string arg = raw.substr(start, end - start);
    if (!out.empty()) out += ' ';
    out += arg.find_first_of(" \t\"'") == std::string::npos ? arg : "'" + arg + "'";
    start = end + 1;
  }
  return out;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux: kilobytes
}

// Device memory in use on the whole device (cudaMemGetInfo: total - free), -1 where there is no CUDA device. The
// bench reports its growth from before the engine loaded: the memory this process's engine took (weights,
// workspace, library handles) provided nothing else allocates on the device meanwhile.
int64_t device_used_bytes(int device) {
#ifdef LAYOUTRT_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device >= count) {
    cudaGetLastError();
    return -1;
  }
  size_t free_b = 0, total_b = 0;
  if (cudaSetDevice(device) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return static_cast<int64_t>(total_b - free_b);
#else
  (void)device;
  return -1;
#endif
}

// Times one run(): CUDA events on the context's stream when it has one, else the host clock.
class RunTimer {
 public:
  RunTimer(void* stream, int device) : stream_(stream) {
#ifdef LAYOUTRT_WITH_CUDA
    if (stream_) {
      check(cudaSetDevice(device), "cudaSetDevice");  // events must live on the stream's device
      check(cudaEventCreate(&start_), "cudaEventCreate");
      check(cudaEventCreate(&stop_), "cudaEventCreate");
    }
#endif
  }
  ~RunTimer() {
#ifdef LAYOUTRT_WITH_CUDA
    if (start_) cudaEventDestroy(start_);
    if (stop_) cudaEventDestroy(stop_);
#endif
  }
  RunTimer(const RunTimer&) = delete;
  RunTimer& operator=(const RunTimer&) = delete;

  const char* source() const { return stream_ ? "cuda_events" : "steady_clock"; }

  // Returns {timed ms, host wall ms}.
  template <class Fn>
  std::pair<double, double> time(Fn&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
#ifdef LAYOUTRT_WITH_CUDA
    auto* s = static_cast<cudaStream_t>(stream_);
    if (stream_) check(cudaEventRecord(start_, s), "cudaEventRecord");
#endif
    fn();
#ifdef LAYOUTRT_WITH_CUDA
    float event_ms = 0;
    if (stream_) {
      check(cudaEventRecord(stop_, s), "cudaEventRecord");
      check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      check(cudaEventElapsedTime(&event_ms, start_, stop_), "cudaEventElapsedTime");
    }
#endif
    const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
#ifdef LAYOUTRT_WITH_CUDA
    if (stream_) return {static_cast<double>(event_ms), wall};
#endif
    return {wall, wall};
  }

 private:
#ifdef LAYOUTRT_WITH_CUDA
  static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw_error(ErrorCode::kCuda, "bench: ", what, " failed: ", cudaGetErrorString(e));
  }
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
#endif
  void* stream_ = nullptr;
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The diagnostics options' files: PREFIX.b<batch>.csv, written whole (errors name the option and the path).
std::string trace_path(const std::string& prefix, int64_t B) { return prefix + ".b" + std::to_string(B) + ".csv"; }
#if defined(LAYOUTRT_WITH_CUDA)
void write_trace_csv(const char* option, const std::string& path, const std::string& csv) {
  std::ofstream f(path);
  f << csv;
  if (!f) throw_error(ErrorCode::kIo, "bench: ", option, ": cannot write ", path);
}
#endif

// The attention kernel's phase trace (--attention-trace; src/cuda/flash_attention_sm90.h), on or off.
void set_attention_trace(bool on) {
#if defined(LAYOUTRT_WITH_CUDA)
  cuda::attention_trace_enable(on);
#else
  (void)on;
#endif
}

// Turns the trace off and writes the records of the runs since it was turned on to `path` (CSV).
void write_attention_trace(const std::string& path) {
#if defined(LAYOUTRT_WITH_CUDA)
  cuda::attention_trace_enable(false);
  const std::vector<unsigned long long> records = cuda::attention_trace_read();
  write_trace_csv("--attention-trace", path, cuda::attention_trace_csv(records));
  std::fprintf(stderr, "bench: %zu attention trace records -> %s\n", records.size() / cuda::kAttentionTraceFields,
               path.c_str());
#else
  (void)path;
#endif
}

bool attention_trace_built() {
#if defined(LAYOUTRT_WITH_CUDA)
  return cuda::attention_trace_built();
#else
  return false;
#endif
}

// The device timeline (--kernel-trace; src/cuda/kernel_trace.h): recording from before the engine loads (so every
// CUDA graph it instantiates is traced) to the end of the bench; each batch size's first timed run is written.
class KernelTimeline {
 public:
  explicit KernelTimeline(const std::string& prefix) : prefix_(prefix) {
#if defined(LAYOUTRT_WITH_CUDA)
    if (prefix_.empty()) return;
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      (void)cudaGetLastError();
      throw_error(ErrorCode::kUnsupported, "bench: --kernel-trace: no CUDA device (the timeline records GPU work)");
    }
    trace_ = std::make_unique<cuda::KernelTrace>();
    std::fprintf(stderr, "bench: kernel trace through %s (CUPTI API %u); every run is traced, so the times of this "
                 "bench include the tracer's cost\n", trace_->library().c_str(), trace_->cupti_version());
#else
    if (!prefix_.empty())
      throw_error(ErrorCode::kUnsupported, "bench: --kernel-trace: this build has no CUDA backend");
#endif
  }
  // Before the run to record (its stream synchronized before: the earlier work's records are dropped).
  void begin() {
#if defined(LAYOUTRT_WITH_CUDA)
    if (trace_) trace_->discard();
#endif
  }
  // After the recorded run (synchronized): writes PREFIX.b<B>.csv; compute_ms: that run's own compute time (CUDA
  // events), printed beside it — the trace's span is comparable with it, not with the median of the timed runs.
  void end(int64_t B, double compute_ms) {
#if defined(LAYOUTRT_WITH_CUDA)
    if (!trace_) return;
    uint64_t dropped = 0;
    std::vector<cuda::KernelRecord> records = trace_->take(&dropped);
    const std::string path = trace_path(prefix_, B);
    const size_t n = records.size();
    write_trace_csv("--kernel-trace", path, cuda::kernel_trace_csv(std::move(records)));
    std::fprintf(stderr, "bench: %zu kernel trace records of a run of %.3f ms (compute) -> %s%s\n", n, compute_ms,
                 path.c_str(), dropped ? (" (" + std::to_string(dropped) + " dropped by CUPTI)").c_str() : "");
#else
    (void)B, (void)compute_ms;
#endif
  }

 private:
  std::string prefix_;
#if defined(LAYOUTRT_WITH_CUDA)
  std::unique_ptr<cuda::KernelTrace> trace_;
#endif
};

}  // namespace

void register_bench(CLI::App& app) {
  struct Opts {
    std::string plan, backend = "auto", lengths, json, markdown, attention_trace, kernel_trace;
    std::vector<int64_t> batches{1, 2, 4, 8, 16, 32};
    int64_t text_tokens = 512;
    int warmup = 5, iters = 30, threads = 0, device = 0;
    double max_seconds = 0;
    uint64_t seed = 1;
    bool quiet = false, pack = false, stages = false, pageable = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time ExecutionContext::run on synthetic inputs per batch size: latency percentiles, throughput, "
               "TFLOP/s, memory");
  cmd->add_option("--plan", o->plan, "Plan file from `layoutrt build` (build it with --max-batch >= the largest batch)")
      ->required();
  cmd->add_option("--backend", o->backend, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--batch,-b", o->batches, "Batch sizes, comma separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--text-tokens,-T", o->text_tokens, "Text tokens per sequence T (the padded length)")
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed runs per batch size")->capture_default_str();
  cmd->add_option("--iters", o->iters, "Timed runs per batch size")->capture_default_str();
  cmd->add_option("--max-seconds", o->max_seconds,
                  "Stop a batch size's timed runs after this many seconds (at least 3 runs; 0: no limit)")
      ->capture_default_str();
  cmd->add_option("--lengths", o->lengths,
                  "Text file of per-document real token counts (whitespace separated, # comments): sequences take "
                  "them in turn, cycling, padded to --text-tokens with attention_mask 0 (default: all real)");
  cmd->add_option("--json", o->json, "Write the results as JSON to this file");
  cmd->add_option("--markdown", o->markdown,
                  "Append one markdown table row per batch size to this file (header written when the file is new)");
  cmd->add_option("--seed", o->seed, "Seed of the synthetic inputs")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  cmd->add_option("--device", o->device, "CUDA device index")->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "No progress on stderr");
  cmd->add_option("--attention-trace", o->attention_trace,
                  "Diagnostics (builds configured with -DLAYOUTRT_ATTENTION_TRACE=ON): the first timed run of each "
                  "batch size records the Hopper attention kernel's phase clocks per warpgroup into "
                  "PREFIX.b<batch>.csv (summary: scripts/attention_trace.py)");
  cmd->add_option("--kernel-trace", o->kernel_trace,
                  "Diagnostics (CUDA backend; needs CUPTI, libcupti.so, at run time): the device timeline of each "
                  "batch size's first timed run — every kernel, memcpy and memset with its start, end, stream and "
                  "launch shape — into PREFIX.b<batch>.csv (summary and SVG picture: scripts/kernel_trace.py); all "
                  "runs are traced, so the times printed include the tracer's cost");
  cmd->add_flag("--pack", o->pack, "Padding-free runs (RunOptions::pack): tokens with attention_mask 0 cost nothing");
  cmd->add_flag("--pageable-inputs", o->pageable,
                "Pass pixel_values in ordinary (pageable) host memory instead of Engine::host_tensor's page-locked "
                "memory: the end-to-end time of callers that do not use it");
  cmd->add_flag("--stages", o->stages,
                "After the timed runs, one more run with per-stage device times (embeddings, qkv, attention, "
                "out_proj_ln, ffn, head), printed and written to the JSON");
  cmd->callback([o] {
    if (o->batches.empty()) throw_error(ErrorCode::kInvalidArgument, "bench: --batch needs at least one batch size");
    for (int64_t b : o->batches)
      if (b < 1) throw_error(ErrorCode::kInvalidArgument, "bench: --batch ", b, ": batch sizes must be >= 1");
    if (o->iters < 1) throw_error(ErrorCode::kInvalidArgument, "bench: --iters ", o->iters, ": must be >= 1");
    if (o->warmup < 0) throw_error(ErrorCode::kInvalidArgument, "bench: --warmup ", o->warmup, ": must be >= 0");
    if (!(o->max_seconds >= 0))
      throw_error(ErrorCode::kInvalidArgument, "bench: --max-seconds ", o->max_seconds, ": must be >= 0");
    const std::vector<int64_t> lengths = o->lengths.empty() ? std::vector<int64_t>{} : read_lengths(o->lengths);
    const std::string trace_prefix = o->attention_trace;
    if (!trace_prefix.empty() && !attention_trace_built())
      throw_error(ErrorCode::kUnsupported, "bench: --attention-trace: this build records no attention trace "
                  "(configure with -DLAYOUTRT_ATTENTION_TRACE=ON and the CUTLASS headers, for sm_90)");

    // The header first (no checksum pass): fail fast on batch sizes the plan cannot take, before loading weights.
    const nlohmann::json header = nlohmann::json::parse(inspect_plan(o->plan, /*verify_checksum=*/false));
    const int max_batch = header.at("build").at("max_batch").get<int>();
    const int max_text = header.at("build").at("max_text_tokens").get<int>();
    const int64_t largest = *std::max_element(o->batches.begin(), o->batches.end());
    if (largest > max_batch)
      throw_error(ErrorCode::kInvalidArgument, "bench: --batch ", largest, " exceeds the plan's max_batch ", max_batch,
                  "; rebuild the plan with `layoutrt build ... --max-batch ", largest, "`");
    if (o->text_tokens < 1 || o->text_tokens > max_text)
      throw_error(ErrorCode::kInvalidArgument, "bench: --text-tokens ", o->text_tokens, " must be in 1..", max_text,
                  " (the plan's max_text_tokens)");

    if (!o->kernel_trace.empty() && parse_backend(o->backend) == BackendKind::kCPU)
      throw_error(ErrorCode::kUnsupported, "bench: --kernel-trace: the CPU backend has no device timeline");
    KernelTimeline timeline(o->kernel_trace);  // before the engine: its graphs are recorded too

    EngineOptions eo;
    eo.backend = parse_backend(o->backend);
    eo.cpu_threads = o->threads;
    eo.cuda_device = o->device;
    const int64_t dev_before = eo.backend == BackendKind::kCPU ? -1 : device_used_bytes(o->device);
    auto engine = load_engine(o->plan, eo);
    const ModelInfo& info = engine->info();
    const bool on_device = engine->backend() == BackendKind::kCUDA;
    if (!o->kernel_trace.empty() && !on_device)
      throw_error(ErrorCode::kUnsupported, "bench: --kernel-trace: the engine runs on the CPU backend");
    auto ctx = engine->create_context();
    RunTimer timer(ctx->device_stream(), o->device);

    const ModelShape shape = model_shape(header, info);
    const int64_t T = info.text_embed ? o->text_tokens : 0;
    const int64_t L = T + (info.visual_embed ? info.visual_tokens : 0);
    const double gflop = flops_per_sequence(shape, T) / 1e9;
    const std::string date = utc_now(), device = engine->device_name(), cmdline = command_line();
    // "fp16", or "fp16 residual-F32" for a plan built with --residual f32.
    const bool wide_residual = info.residual == DType::kF32 && encoder_dtype(info.precision) != DType::kF32;
    const std::string precision_label =
        std::string(precision_name(info.precision)) + (wide_residual ? " residual-F32" : "");
    const char* precision = precision_label.c_str();

    std::printf("# layoutrt bench | %s | %s | backend %s | plan %s, %s, max_batch %d | %s\n", date.c_str(), device.c_str(),
                backend_kind_name(engine->backend()), precision, head_kind_name(info.head), max_batch,
                cmdline.c_str());
    if (!engine->gemm_tuning().empty()) std::printf("# gemm algorithms: %s\n", engine->gemm_tuning().c_str());
    std::printf("# T = %lld text + %lld visual = %lld tokens per sequence; %.2f GFLOP per sequence (model FLOPs, "
                "padding counted); %s; warmup %d, iters %d%s\n",
                static_cast<long long>(T), static_cast<long long>(L - T), static_cast<long long>(L), gflop,
                timer.source(), o->warmup, o->iters,
                lengths.empty() ? "" : (", real lengths from " + o->lengths).c_str());
    const char* mem_label = on_device ? "dev_MiB" : "rss_MiB";
    std::printf("# median/p90/p99, seq/s, TFLOP/s: compute time (the forward, inputs on the device); e2e_ms: median of "
                "the whole run() call (validation, copies in and out; pixel_values in %s host memory)\n",
                o->pageable ? "pageable" : "Engine::host_tensor's");
    std::printf("%6s %10s %10s %10s %10s %9s %10s %9s\n", "batch", "median_ms", "p90_ms", "p99_ms", "seq/s", "TFLOP/s",
                "e2e_ms", mem_label);
    std::fflush(stdout);

    nlohmann::json results = nlohmann::json::array();
    std::string md_rows;
    std::mt19937_64 rng(o->seed);
    size_t cursor = 0;  // position in the --lengths cycle
    RunOptions run_opt;
    run_opt.pack = o->pack;
    int64_t dev_after_max = -1;
    ProgressFn progress = progress_bar(o->quiet);
    for (const int64_t B : o->batches) {
      // A few distinct batches (different masks when --lengths cycles), taken in turn by the runs.
      const size_t variants = lengths.empty() ? 1 : std::min<size_t>(8, (lengths.size() + B - 1) / B);
      std::vector<Inputs> batches;
      int64_t real_tokens = 0;
      std::vector<int64_t> variant_tokens(variants, 0);
      for (size_t v = 0; v < variants; ++v) {
        std::vector<int64_t> real(B, T);
        if (!lengths.empty())
          for (int64_t b = 0; b < B; ++b) real[b] = std::min(lengths[cursor++ % lengths.size()], T);
        for (int64_t r : real) variant_tokens[v] += r;
        real_tokens += variant_tokens[v];
        batches.push_back(synthetic_inputs(info, B, T, real, rng));
        Tensor& px = batches.back().pixel_values;
        if (px.defined() && !o->pageable) {  // as a serving process would hold them: in the engine's upload memory
          Tensor pinned = engine->host_tensor(px.dtype(), px.shape());
          std::memcpy(pinned.mutable_data(), px.data(), px.nbytes());
          px = pinned;
        }
      }
      // Compute times per distinct batch: with --lengths they differ (packed runs cost what their tokens cost), and
      // the median over all runs is then the nearest-rank value of a mixture.
      std::vector<std::vector<double>> variant_ms(variants);
      const std::string label = "bench batch " + std::to_string(B);
      const int total = o->warmup + o->iters;
      std::vector<double> ms, e2e_ms, wall_ms;
      std::map<std::string, std::vector<double>> phase_ms;  // ExecutionContext::host_times_ms per timed run
      double timed_s = 0;
      for (int i = 0; i < total; ++i) {
        const Inputs& in = batches[i % batches.size()];
        const bool first_timed = i == o->warmup;  // what the traces record
        const bool trace = !trace_prefix.empty() && first_timed;
        if (trace) set_attention_trace(true);
        if (first_timed) timeline.begin();
        auto [t, w] = timer.time([&] { ctx->run(in, run_opt); });
        if (trace) write_attention_trace(trace_path(trace_prefix, B));
        const double compute = ctx->compute_ms();
        if (first_timed) timeline.end(B, compute);
        if (i >= o->warmup) {
          ms.push_back(compute >= 0 ? compute : t);
          variant_ms[i % batches.size()].push_back(ms.back());
          e2e_ms.push_back(t);
          wall_ms.push_back(w);
          for (const auto& [k, v] : ctx->host_times_ms()) phase_ms[k].push_back(v);
          timed_s += w / 1e3;
        }
        if (progress) progress(label, i + 1, total);
        if (o->max_seconds > 0 && ms.size() >= 3 && timed_s > o->max_seconds) {
          if (progress) progress(label, total, total);
          break;
        }
      }
      std::map<std::string, double> stage_ms;
      if (o->stages) {
        RunOptions so = run_opt;
        so.time_stages = true;
        ctx->run(batches[0], so);
        stage_ms = ctx->stage_times_ms();
      }
      std::sort(ms.begin(), ms.end());
      std::sort(wall_ms.begin(), wall_ms.end());
      std::sort(e2e_ms.begin(), e2e_ms.end());
      const double e2e_median = percentile(e2e_ms, 50);
      const double median = percentile(ms, 50), p90 = percentile(ms, 90), p99 = percentile(ms, 99);
      const double seq_per_s = static_cast<double>(B) / (median / 1e3);
      const double tflops = gflop * seq_per_s / 1e3;
      const int64_t dev_after = on_device ? device_used_bytes(o->device) : -1;
      dev_after_max = std::max(dev_after_max, dev_after);
      const int64_t mem = on_device ? (dev_before >= 0 && dev_after >= 0 ? dev_after - dev_before : -1)
                                    : peak_rss_bytes();
      std::printf("%6lld %10.3f %10.3f %10.3f %10.1f %9.3g %10.3f %9s\n", static_cast<long long>(B), median, p90, p99,
                  seq_per_s, tflops, e2e_median, mem >= 0 ? fmt("%.0f", mem / 1048576.0).c_str() : "n/a");
      nlohmann::json per_batch = nlohmann::json::array();
      std::string per_batch_text;
      for (size_t v = 0; v < variants; ++v) {
        std::sort(variant_ms[v].begin(), variant_ms[v].end());
        const double m = percentile(variant_ms[v], 50);
        per_batch.push_back({{"real_tokens", variant_tokens[v]}, {"median_ms", m},
                             {"iters", static_cast<int64_t>(variant_ms[v].size())}});
        char cell[64];
        std::snprintf(cell, sizeof cell, " %.3f (%lld)", m, static_cast<long long>(variant_tokens[v]));
        per_batch_text += cell;
      }
      if (variants > 1) std::printf("       distinct batches, median ms (real text tokens):%s\n", per_batch_text.c_str());
      std::fflush(stdout);
      nlohmann::json r = {{"batch", B},
                          {"median_ms", median},
                          {"p90_ms", p90},
                          {"p99_ms", p99},
                          {"min_ms", ms.front()},
                          {"max_ms", ms.back()},
                          {"e2e_median_ms", e2e_median},
                          {"e2e_p90_ms", percentile(e2e_ms, 90)},
                          {"e2e_p99_ms", percentile(e2e_ms, 99)},
                          {"wall_median_ms", percentile(wall_ms, 50)},
                          {"seq_per_s", seq_per_s},
                          {"tflops", tflops},
                          {"iters", static_cast<int64_t>(ms.size())},
                          {"distinct_batches", variants},
                          {"per_batch", per_batch},
                          {"mean_real_tokens", static_cast<double>(real_tokens) / static_cast<double>(variants * B)}};
      if (on_device) r["device_used_bytes"] = dev_after;
      if (!stage_ms.empty()) {
        double total_ms = 0;
        for (const auto& [k, v] : stage_ms) total_ms += v;
        std::string line = "       stages (ms):";
        for (const char* k : {"embeddings", "qkv", "attention", "out_proj_ln", "ffn", "head"})
          if (stage_ms.count(k))
            line += " " + std::string(k) + fmt(" %.3f", stage_ms[k]) + fmt(" (%.0f%%)", 100.0 * stage_ms[k] / total_ms);
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        r["stages_ms"] = stage_ms;
      }
      if (!phase_ms.empty()) {
        // Where the end-to-end time goes, host wall-clock medians per phase (engine.h: host_times_ms).
        nlohmann::json phases;
        std::string line = "       e2e phases (ms, medians):";
        for (const char* k : {"prepare", "upload", "forward", "download"})
          if (phase_ms.count(k)) {
            std::sort(phase_ms[k].begin(), phase_ms[k].end());
            phases[k] = percentile(phase_ms[k], 50);
            line += " " + std::string(k) + fmt(" %.3f", phases[k].get<double>());
          }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        r["e2e_phases_median_ms"] = phases;
      }
      const std::map<std::string, std::string> kernels = ctx->kernel_choices();
      if (!kernels.empty()) {
        std::string line = "       kernels:";
        for (const auto& [k, v] : kernels) line += " " + k + "=" + v;
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        r["kernels"] = kernels;
      }
      r["host_peak_rss_bytes"] = peak_rss_bytes();
      results.push_back(r);
      const std::string mem_cell = mem < 0 ? "n/a" : fmt("%.0f", mem / 1048576.0) + (on_device ? " (device)" : " (RSS)");
      md_rows += "| layoutrt " + std::string(backend_kind_name(engine->backend())) + (o->pack ? " packed" : "") +
                 (lengths.empty() ? "" : " FUNSD-lengths") + " | " + precision + " | " +
                 std::to_string(B) + " | " + std::to_string(T) + " | " + fmt("%.3f", median) + " | " +
                 fmt("%.3f", p90) + " | " + fmt("%.3f", p99) + " | " + fmt("%.1f", seq_per_s) + " | " +
                 fmt("%.3g", tflops) + " | " + fmt("%.3f", e2e_median) + " | " + mem_cell + " |\n";
    }

    if (on_device)
      std::printf("# memory: process device memory = cudaMemGetInfo used bytes after the runs minus before the engine "
                  "loaded (%.0f MiB before, %.0f MiB after); other processes on the device would distort it\n",
                  dev_before / 1048576.0, dev_after_max / 1048576.0);
    else
      std::printf("# memory: peak resident set size of this process (getrusage), weights + workspace + inputs\n");

    if (!o->json.empty()) {
      nlohmann::json j;
      j["tool"] = "layoutrt bench";
      j["layoutrt_version"] = version();
      j["date"] = date;
      j["command"] = cmdline;
      j["plan"] = o->plan;
      j["device"] = device;
      j["backend"] = backend_kind_name(engine->backend());
      j["precision"] = precision_name(info.precision);
      j["residual"] = dtype_name(info.residual);
      j["gemm_tuning"] = engine->gemm_tuning();
      j["head"] = head_kind_name(info.head);
      j["max_batch"] = max_batch;
      j["text_tokens"] = T;
      j["visual_tokens"] = L - T;
      j["seq_len"] = L;
      j["gflop_per_seq"] = gflop;
      j["flops_basis"] = "model FLOPs of the padded shape, formula in tools/layoutrt/cmd_bench.cpp";
      j["timing"] = timer.source();
      j["timing_basis"] = "median/p90/p99/seq_per_s/tflops: compute (the forward, inputs on the device: "
                          "ExecutionContext::compute_ms); e2e_*: the whole run() call timed with `timing`";
      j["warmup"] = o->warmup;
      j["iters"] = o->iters;
      j["packed"] = o->pack;
      j["pixel_values_memory"] = o->pageable ? "pageable" : "Engine::host_tensor (page-locked on CUDA)";
      j["percentiles"] = "nearest rank";
      j["lengths_file"] = o->lengths;
      j["seed"] = o->seed;
      j["memory"] = on_device ? nlohmann::json{{"kind", "process device memory (cudaMemGetInfo delta)"},
                                               {"device_used_before_load_bytes", dev_before},
                                               {"device_used_after_runs_bytes", dev_after_max},
                                               {"engine_device_bytes", dev_before >= 0 && dev_after_max >= 0
                                                                           ? dev_after_max - dev_before
                                                                           : -1}}
                              : nlohmann::json{{"kind", "host peak RSS (getrusage)"},
                                               {"host_peak_rss_bytes", peak_rss_bytes()}};
      j["results"] = results;
      std::ofstream f(o->json);
      f << j.dump(2) << "\n";
      if (!f) throw_error(ErrorCode::kIo, "bench: cannot write --json ", o->json);
    }
    if (!o->markdown.empty()) {
      // Header unless appending to a non-empty regular file (never read the target: /dev/stdout may be a pipe).
      std::error_code ec;
      const bool fresh = !std::filesystem::is_regular_file(o->markdown, ec) ||
                         std::filesystem::file_size(o->markdown, ec) == 0 || ec;
      std::ofstream f(o->markdown, std::ios::app);
      if (fresh)
        f << "| engine | precision | batch | T | median ms | p90 ms | p99 ms | seq/s | TFLOP/s | e2e median ms | "
             "memory MiB |\n"
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
      f << md_rows;
      if (!f) throw_error(ErrorCode::kIo, "bench: cannot write --markdown ", o->markdown);
    }
  });
}

}  // namespace layoutrt::cli

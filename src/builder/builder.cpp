// layoutrt build: checkpoint -> plan. Reads and validates the checkpoint, applies the precision policy and the weight
// transforms of plan/plan_layout.h, computes the relative-position bucket tables, writes the plan.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "layoutrt/engine.h"
#include "model/rel_pos.h"
#include "model/weights.h"
#include "ops/backend.h"
#include "plan/plan_format.h"
#include "plan/plan_layout.h"
#include "runtime/synthetic.h"

namespace layoutrt {

namespace {

Tensor concat_rows(const std::vector<Tensor>& parts, DType to) {
  Shape shape = parts.at(0).shape();
  int64_t rows = 0;
  for (const Tensor& t : parts) rows += t.dim(0);
  shape[0] = rows;
  Tensor out(to, shape);
  size_t offset = 0;
  for (const Tensor& t : parts) {
    Tensor c = t.dtype() == to ? t : t.to(to);
    std::memcpy(static_cast<char*>(out.mutable_data()) + offset, c.data(), c.nbytes());
    offset += c.nbytes();
  }
  return out;
}

Tensor bucket_tensor(const std::vector<int32_t>& table) {
  Tensor t(DType::kI32, {static_cast<int64_t>(table.size())});
  std::memcpy(t.mutable_data(), table.data(), table.size() * sizeof(int32_t));
  return t;
}

// BuildOptions::tune_gemm: whether to tune (kOn without a CUDA device is an error, raised before any work).
bool gemm_tuning_wanted(const BuildOptions& opt) {
  if (opt.tune_gemm == GemmTuning::kOff) return false;
#ifdef LAYOUTRT_WITH_CUDA
  if (cuda_device_available()) return true;
  if (opt.tune_gemm == GemmTuning::kOn) throw_error(ErrorCode::kUnsupported, "--tune-gemm on: no CUDA device is available");
#else
  if (opt.tune_gemm == GemmTuning::kOn)
    throw_error(ErrorCode::kUnsupported, "--tune-gemm on: this layoutrt was built without CUDA");
#endif
  return false;
}

// Runs the freshly written plan on the GPU at every power-of-two batch below max_batch and at max_batch, with
// max_text_tokens real tokens (synthetic_inputs), and returns the cuBLASLt algorithms those forwards chose (JSON text).
std::string tune_gemm_algorithms(const BuildOptions& opt, const std::string& plan_path) {
#ifdef LAYOUTRT_WITH_CUDA
  std::vector<int> batches;
  for (int b = 1; b < opt.max_batch; b *= 2) batches.push_back(b);
  batches.push_back(opt.max_batch);
  const uint64_t since = cuda_begin_gemm_recording();
  {
    EngineOptions eo;
    eo.backend = BackendKind::kCUDA;
    eo.cuda_device = opt.cuda_device;
    auto engine = Engine::load(plan_path, eo);
    auto ctx = engine->create_context();
    std::mt19937_64 rng(1);
    int done = 0;
    for (int B : batches) {
      const int64_t T = opt.max_text_tokens;
      ctx->run(synthetic_inputs(engine->info(), B, T, std::vector<int64_t>(B, T), rng));
      if (opt.progress) opt.progress("tuning GEMMs", ++done, static_cast<int64_t>(batches.size()));
    }
  }
  return cuda_export_gemm_algorithms(opt.cuda_device, since);
#else
  (void)opt, (void)plan_path;
  return "";
#endif
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

void build_plan(const BuildOptions& opt, const std::string& plan_path) {
  if (opt.checkpoint_dir.empty()) throw_error(ErrorCode::kInvalidArgument, "build: --checkpoint is required");
  if (opt.max_batch < 1 || opt.max_batch > 4096)
    throw_error(ErrorCode::kInvalidArgument, "build: --max-batch ", opt.max_batch, " must be in 1..4096");
  const bool tune = gemm_tuning_wanted(opt);
  if (opt.progress) opt.progress("reading checkpoint", 0, 1);
  CheckpointWeights w = load_checkpoint(opt.checkpoint_dir, opt.head);
  const LayoutLMv3Config& c = w.config;
  // Largest T: the position table holds pad_token_id + T + 1 positions (RoBERTa-style ids start after the pad id).
  const int position_limit = c.text_embed ? c.max_position_embeddings - c.pad_token_id - 1 : 512;
  if (opt.max_text_tokens < 1 || opt.max_text_tokens > 512 || opt.max_text_tokens > position_limit)
    throw_error(ErrorCode::kInvalidArgument, "build: --max-text-tokens ", opt.max_text_tokens, " must be in 1..",
                std::min(512, position_limit), " (max_position_embeddings ", c.max_position_embeddings,
                ", pad_token_id ", c.pad_token_id, ")");
  if (opt.progress) opt.progress("reading checkpoint", 1, 1);

  const int r1 = plan_max_distance_1d(c, opt.max_text_tokens), r2 = plan_max_distance_2d(c);
  std::vector<std::pair<std::string, Tensor>> tensors;
  const auto specs = plan_tensor_specs(c, w.head, opt.precision, opt.max_text_tokens);
  int64_t done = 0;
  for (const PlanTensorSpec& s : specs) {
    Tensor t;
    switch (s.transform) {
      case PlanTransform::kCopy: t = w.tensors.at(s.sources.at(0)).to(s.dtype); break;
      case PlanTransform::kReshape: t = w.tensors.at(s.sources.at(0)).to(s.dtype).reshaped(s.shape); break;
      case PlanTransform::kConcatRows: {
        std::vector<Tensor> parts;
        for (const auto& n : s.sources) parts.push_back(w.tensors.at(n));
        t = concat_rows(parts, s.dtype);
        break;
      }
      case PlanTransform::kBuckets1D:
        t = bucket_tensor(relative_position_bucket_table(r1, c.rel_pos_bins, c.max_rel_pos));
        break;
      case PlanTransform::kBuckets2D:
        t = bucket_tensor(relative_position_bucket_table(r2, c.rel_2d_pos_bins, c.max_rel_2d_pos));
        break;
    }
    if (t.shape() != s.shape || t.dtype() != s.dtype)
      throw_error(ErrorCode::kInternal, "build: plan tensor ", s.name, " came out ", dtype_name(t.dtype()), " ",
                  shape_str(t.shape()), ", expected ", dtype_name(s.dtype), " ", shape_str(s.shape));
    tensors.emplace_back(s.name, std::move(t));
    if (opt.progress) opt.progress("converting weights", ++done, static_cast<int64_t>(specs.size()));
  }

  nlohmann::json h;
  h["format"] = "layoutrt-plan";
  h["layoutrt_version"] = LAYOUTRT_VERSION;
  h["created_utc"] = utc_now();
  h["model"] = {{"config", c.to_json()}, {"head", head_kind_name(w.head)}, {"labels", c.id2label}};
  h["precision"] = {{"policy", precision_name(opt.precision)},
                    {"embeddings", dtype_name(embedding_dtype(opt.precision))},
                    {"encoder", dtype_name(encoder_dtype(opt.precision))},
                    {"tf32_gemm", opt.precision == Precision::kTF32},
                    {"residual", dtype_name(opt.fp32_residual ? DType::kF32 : encoder_dtype(opt.precision))},
                    {"heads", "F32"},
                    {"layernorm_statistics", "F32"},
                    {"softmax", "F32"},
                    {"accumulate", "F32"}};
  h["build"] = {{"max_batch", opt.max_batch},
                {"max_text_tokens", opt.max_text_tokens},
                {"checkpoint", opt.checkpoint_dir},
                {"checkpoint_files", w.files},
                {"checkpoint_dtype", w.stored_dtype}};
  h["rel_pos"] = {{"max_distance_1d", r1},
                  {"max_distance_2d", r2},
                  {"bucket_math", "float32, torch CPU operation order, correctly rounded logf"}};
  write_plan(plan_path, h, tensors, opt.progress);
  if (tune) {
    std::string record;
    try {
      record = tune_gemm_algorithms(opt, plan_path);
    } catch (const Error& e) {
      // --tune-gemm auto: the plan written above stays valid without a record (algorithms are then timed on first
      // use); only an explicit --tune-gemm on fails the build.
      if (opt.tune_gemm == GemmTuning::kOn) throw;
      std::fprintf(stderr, "layoutrt build: warning: GEMM tuning skipped (%s); the plan times GEMMs on first use\n",
                   e.what());
      return;
    }
    h["gemm_tuning"] = nlohmann::json::parse(record);
    write_plan(plan_path, h, tensors, opt.progress);
  }
}

std::string inspect_plan(const std::string& plan_path, bool verify_checksum) {
  PlanFile p = PlanFile::open(plan_path, verify_checksum);
  nlohmann::json h = p.header();
  h["file_bytes"] = p.file_bytes();
  h["checksum"] = verify_checksum ? "verified" : "not checked";
  return h.dump(2);
}

}  // namespace layoutrt

// Engine: a loaded, verified plan with its weights on a backend. ExecutionContext: one workspace + backend stream.
#include <chrono>
#include <mutex>

#include "layoutrt/engine.h"
#include "model/rel_pos.h"
#include "plan/plan_format.h"
#include "plan/plan_layout.h"
#include "runtime/forward.h"

namespace layoutrt {

const char* version() { return LAYOUTRT_VERSION; }

const char* head_kind_name(HeadKind h) {
  switch (h) {
    case HeadKind::kBase: return "base";
    case HeadKind::kTokenClassification: return "token_classification";
    case HeadKind::kSequenceClassification: return "sequence_classification";
    case HeadKind::kQuestionAnswering: return "question_answering";
  }
  return "?";
}

const char* backend_kind_name(BackendKind b) {
  switch (b) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kCPU: return "cpu";
    case BackendKind::kCUDA: return "cuda";
  }
  return "?";
}

const Tensor& Outputs::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw_error(ErrorCode::kInvalidArgument, "no output named ", name);
  return it->second;
}

namespace {

HeadKind head_from_name(const std::string& s, const std::string& path) {
  for (HeadKind h : {HeadKind::kBase, HeadKind::kTokenClassification, HeadKind::kSequenceClassification,
                     HeadKind::kQuestionAnswering})
    if (s == head_kind_name(h)) return h;
  throw_error(ErrorCode::kFormat, path, ": unknown head \"", s, "\"");
}

class EngineImpl;

class ContextImpl : public ExecutionContext {
 public:
  ContextImpl(std::shared_ptr<EngineImpl> engine, std::unique_ptr<Backend> backend);
  Outputs run(const Inputs& inputs, const RunOptions& options) override;
  void* device_stream() const override { return backend_->stream(); }
  std::map<std::string, double> stage_times_ms() const override { return stage_times_; }
  double compute_ms() const override { return backend_->last_recorded_ms(); }
  std::map<std::string, double> host_times_ms() const override { return host_times_; }
  std::map<std::string, std::string> kernel_choices() const override { return backend_->kernel_choices(); }

 private:
  std::shared_ptr<EngineImpl> engine_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Workspace> workspace_;
  std::map<std::string, double> stage_times_;
  std::map<std::string, double> host_times_;
};

class EngineImpl : public Engine, public std::enable_shared_from_this<EngineImpl> {
 public:
  EngineImpl(const std::string& path, const EngineOptions& opt) : options_(opt), plan_(PlanFile::open(path)) {
    const nlohmann::json& h = plan_.header();
    try {
      weights_.config = LayoutLMv3Config::from_json(h.at("model").at("config"), path + " (plan header)");
      weights_.head = head_from_name(h.at("model").at("head").get<std::string>(), path);
      auto p = precision_from_name(h.at("precision").at("policy").get<std::string>());
      if (!p) throw_error(ErrorCode::kFormat, path, ": unknown precision ", h.at("precision").at("policy").dump());
      weights_.precision = *p;
      // Plans written before the field existed kept the residual stream in the encoder's dtype.
      const DType enc = encoder_dtype(*p);
      const std::string res = h.at("precision").value("residual", std::string(dtype_name(enc)));
      if (res != dtype_name(DType::kF32) && res != dtype_name(enc))
        throw_error(ErrorCode::kFormat, path, ": precision.residual ", res, " is neither F32 nor the encoder's ",
                    dtype_name(enc));
      weights_.fp32_residual = res == dtype_name(DType::kF32);
      info_.max_batch = h.at("build").at("max_batch").get<int>();
      info_.max_text_tokens = h.at("build").at("max_text_tokens").get<int>();
    } catch (const nlohmann::json::exception& e) {
      throw_error(ErrorCode::kFormat, path, ": plan header is missing a field (", e.what(), ")");
    }
    const LayoutLMv3Config& c = weights_.config;
    info_.head = weights_.head;
    info_.precision = weights_.precision;
    info_.residual = weights_.fp32_residual ? DType::kF32 : encoder_dtype(weights_.precision);
    info_.num_labels = weights_.head == HeadKind::kBase ? 0 : c.num_labels();
    if (weights_.head == HeadKind::kTokenClassification || weights_.head == HeadKind::kSequenceClassification)
      info_.labels = c.id2label;
    info_.hidden_size = c.hidden_size;
    info_.num_layers = c.num_hidden_layers;
    info_.num_heads = c.num_attention_heads;
    info_.vocab_size = c.vocab_size;
    info_.image_size = c.input_size;
    info_.num_channels = c.num_channels;
    info_.visual_tokens = c.visual_tokens();
    info_.text_embed = c.text_embed;
    info_.visual_embed = c.visual_embed;
    if (info_.max_batch < 1 || info_.max_text_tokens < 1 || info_.max_text_tokens > 512)
      throw_error(ErrorCode::kFormat, path, ": plan build options are invalid (max_batch ", info_.max_batch,
                  ", max_text_tokens ", info_.max_text_tokens, ")");
    weights_.head_layers = head_linears(c, weights_.head);
    weights_.max_dist_1d = plan_max_distance_1d(c, info_.max_text_tokens);
    weights_.max_dist_2d = plan_max_distance_2d(c);

    // The plan must hold exactly the tensors this config + head + precision need.
    const auto specs = plan_tensor_specs(c, weights_.head, weights_.precision, info_.max_text_tokens);
    if (specs.size() != plan_.tensors().size())
      throw_error(ErrorCode::kFormat, path, ": plan holds ", plan_.tensors().size(), " tensors, its header's model needs ",
                  specs.size(), " (plan and header do not match)");
    for (const PlanTensorSpec& s : specs) {
      const PlanTensor* t = plan_.find(s.name);
      if (!t) throw_error(ErrorCode::kMissingTensor, path, ": plan lacks tensor ", s.name);
      if (t->dtype != s.dtype || t->shape != s.shape)
        throw_error(ErrorCode::kShapeMismatch, path, ": plan tensor ", s.name, " is ", dtype_name(t->dtype), " ",
                    shape_str(t->shape), ", the header's model needs ", dtype_name(s.dtype), " ", shape_str(s.shape));
    }

    backend_kind_ = resolve_backend(opt.backend);
    backend_ = make_backend();
#ifdef LAYOUTRT_WITH_CUDA
    if (backend_kind_ == BackendKind::kCUDA)
      gemm_tuning_ = h.contains("gemm_tuning")
                         ? cuda_import_gemm_algorithms(opt.cuda_device, h.at("gemm_tuning").dump())
                         : "no GEMM algorithms in the plan: timed on first use";
#endif
    for (const PlanTensorSpec& s : specs) {
      if (s.transform == PlanTransform::kBuckets1D || s.transform == PlanTransform::kBuckets2D) continue;
      weights_.tensors[s.name] = upload(plan_.tensor(s.name));
    }
    // Per-head bias by distance, gathered once from the bucket tables (kernels only look them up).
    if (c.has_relative_attention_bias)
      weights_.bias1d = upload(gather_bias_by_distance(plan_.tensor("encoder.rel_pos_bias.weight"),
                                                       plan_.tensor("rel_pos.buckets_1d")));
    if (c.has_spatial_attention_bias) {
      const Tensor b2 = plan_.tensor("rel_pos.buckets_2d");
      weights_.bias_x = upload(gather_bias_by_distance(plan_.tensor("encoder.rel_pos_x_bias.weight"), b2));
      weights_.bias_y = upload(gather_bias_by_distance(plan_.tensor("encoder.rel_pos_y_bias.weight"), b2));
    }
    backend_->synchronize();
  }

  ~EngineImpl() override {
    for (void* p : device_allocations_) backend_->deallocate(p);
  }

  const ModelInfo& info() const override { return info_; }
  BackendKind backend() const override { return backend_kind_; }
  std::string device_name() const override { return backend_->name(); }
  std::string gemm_tuning() const override { return gemm_tuning_; }
  const ModelWeights& weights() const { return weights_; }

  Tensor host_tensor(DType dtype, Shape shape) const override {
    for (int64_t d : shape)
      if (d < 0) throw_error(ErrorCode::kInvalidArgument, "host_tensor: shape ", shape_str(shape), " has a negative dim");
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    std::shared_ptr<void> mem = backend_->allocate_host(bytes);
    void* data = mem.get();
    return Tensor(dtype, std::move(shape), std::move(mem), data);
  }

  std::unique_ptr<ExecutionContext> create_context() override {
    return std::make_unique<ContextImpl>(shared_from_this(), make_backend());
  }

 private:
  static BackendKind resolve_backend(BackendKind want) {
#ifdef LAYOUTRT_WITH_CUDA
    if (want == BackendKind::kAuto) return cuda_device_available() ? BackendKind::kCUDA : BackendKind::kCPU;
    if (want == BackendKind::kCUDA && !cuda_device_available())
      throw_error(ErrorCode::kCuda, "--backend cuda: no CUDA device is available");
    return want;
#else
    if (want == BackendKind::kCUDA)
      throw_error(ErrorCode::kUnsupported, "--backend cuda: this layoutrt was built without CUDA");
    return BackendKind::kCPU;
#endif
  }

  std::unique_ptr<Backend> make_backend() const {
#ifdef LAYOUTRT_WITH_CUDA
    if (backend_kind_ == BackendKind::kCUDA) return make_cuda_backend(options_.cuda_device, weights_.precision);
#endif
    return make_cpu_backend(options_.cpu_threads);
  }

  // Puts a host tensor on the backend in the dtype the backend computes with. The CPU backend keeps host memory
  // (mapped plan memory when no conversion is needed).
  TensorView upload(const Tensor& t) {
    const DType want = backend_->weight_dtype(t.dtype());
    Tensor src = want == t.dtype() ? t : t.to(want);
    TensorView v;
    v.dtype = want;
    v.device = backend_->device();
    v.rank = t.rank();
    for (int i = 0; i < t.rank(); ++i) v.dims[i] = t.dim(i);
    if (backend_->device() == Device::kCPU) {
      v.data = const_cast<void*>(src.data());
      host_keepalive_.push_back(std::move(src));
    } else {
      v.data = backend_->allocate(src.nbytes());
      device_allocations_.push_back(v.data);
      backend_->copy_to_device(v.data, src.data(), src.nbytes());
    }
    return v;
  }

  EngineOptions options_;
  PlanFile plan_;
  ModelInfo info_;
  ModelWeights weights_;
  BackendKind backend_kind_ = BackendKind::kCPU;
  std::unique_ptr<Backend> backend_;
  std::vector<Tensor> host_keepalive_;
  std::vector<void*> device_allocations_;
  std::string gemm_tuning_;
};

ContextImpl::ContextImpl(std::shared_ptr<EngineImpl> engine, std::unique_ptr<Backend> backend)
    : engine_(std::move(engine)), backend_(std::move(backend)) {
  workspace_ = std::make_unique<Workspace>(*backend_, engine_->weights(), engine_->info().max_batch,
                                           engine_->info().max_text_tokens);
}

Outputs ContextImpl::run(const Inputs& inputs, const RunOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  host_times_.clear();
  PreparedBatch batch = prepare_batch(engine_->weights().config, engine_->info(), inputs);
  if (options.pack && engine_->weights().head != HeadKind::kQuestionAnswering)
    pack_batch(batch, backend_->lanes_for(batch.batch, packed_rows(batch)));  // the forward's lane count
  host_times_["prepare"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!options.time_stages) return run_forward(*backend_, engine_->weights(), *workspace_, batch, options, &host_times_);
  backend_->enable_stage_timing(true);
  Outputs out = run_forward(*backend_, engine_->weights(), *workspace_, batch, options, &host_times_);
  stage_times_ = backend_->stage_times_ms();
  backend_->enable_stage_timing(false);
  return out;
}

}  // namespace

std::shared_ptr<Engine> Engine::load(const std::string& plan_path, const EngineOptions& options) {
  return std::make_shared<EngineImpl>(plan_path, options);
}

}  // namespace layoutrt

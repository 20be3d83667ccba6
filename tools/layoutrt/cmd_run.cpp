// layoutrt run --plan FILE --inputs X --output Y.safetensors [--json]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/model_io.h"

namespace layoutrt::cli {

namespace {

nlohmann::json summarize(const Engine& engine, const Inputs& in, const Outputs& out, double ms) {
  const ModelInfo& info = engine.info();
  nlohmann::json j;
  j["backend"] = backend_kind_name(engine.backend());
  j["device"] = engine.device_name();
  j["head"] = head_kind_name(info.head);
  j["precision"] = precision_name(info.precision);
  j["latency_ms"] = ms;
  j["mode"] = in.pixel_values.defined() ? (in.input_ids.defined() ? "text+image" : "image") : "text";
  for (const auto& [name, t] : out.tensors)
    j["outputs"][name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}};
  auto label_name = [&](int id) {
    return id >= 0 && id < static_cast<int>(info.labels.size()) ? info.labels[id] : std::to_string(id);
  };
  if (info.head == HeadKind::kTokenClassification) {
    // Predicted label per real token (attention_mask 1), per sequence.
    const Tensor& labels = out.at("labels");
    const Tensor mask = in.attention_mask.defined() ? in.attention_mask.to(DType::kI64) : Tensor();
    for (int64_t b = 0; b < labels.dim(0); ++b) {
      nlohmann::json seq = nlohmann::json::array();
      for (int64_t t = 0; t < labels.dim(1); ++t) {
        const int64_t i = b * labels.dim(1) + t;
        if (mask.defined() && mask.data_as<int64_t>()[i] == 0) continue;
        seq.push_back(label_name(labels.data_as<int32_t>()[i]));
      }
      j["predictions"].push_back(seq);
    }
  } else if (info.head == HeadKind::kSequenceClassification) {
    const Tensor& labels = out.at("labels");
    for (int64_t b = 0; b < labels.dim(0); ++b) j["predictions"].push_back(label_name(labels.data_as<int32_t>()[b]));
  } else if (info.head == HeadKind::kQuestionAnswering) {
    const Tensor& s = out.at("start_logits");
    const Tensor& e = out.at("end_logits");
    for (int64_t b = 0; b < s.dim(0); ++b) {
      const float* sp = s.data_as<float>() + b * s.dim(1);
      const float* ep = e.data_as<float>() + b * e.dim(1);
      j["predictions"].push_back({{"start", std::max_element(sp, sp + s.dim(1)) - sp},
                                  {"end", std::max_element(ep, ep + e.dim(1)) - ep}});
    }
  }
  return j;
}

}  // namespace

void register_run(CLI::App& app) {
  struct Opts {
    std::string plan, inputs, output, backend = "auto";
    bool json = false, hidden = false, pack = false;
    int threads = 0, device = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("run", "Run a plan on inputs (a directory of .npy files or one .safetensors)");
  cmd->add_option("--plan", o->plan, "Plan file from `layoutrt build`")->required();
  cmd->add_option("--inputs,-i", o->inputs,
                  "Directory of input_ids.npy, bbox.npy, attention_mask.npy, pixel_values.npy (as transformers' "
                  "processor names them), or one .safetensors with those tensors")
      ->required();
  cmd->add_option("--output,-o", o->output, "Output .safetensors (or a directory for .npy files)");
  cmd->add_flag("--json", o->json, "Print a JSON summary with the predicted labels on stdout");
  cmd->add_flag("--output-hidden", o->hidden, "Also write last_hidden_state");
  cmd->add_flag("--pack", o->pack,
                "Padding-free run: skip tokens with attention_mask 0 (their logits read 0, labels -1)");
  cmd->add_option("--backend", o->backend, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  cmd->add_option("--device", o->device, "CUDA device index")->capture_default_str();
  cmd->callback([o] {
    if (o->output.empty() && !o->json)
      throw_error(ErrorCode::kInvalidArgument, "run: give --output FILE.safetensors and/or --json");
    EngineOptions eo;
    eo.backend = parse_backend(o->backend);
    eo.cpu_threads = o->threads;
    eo.cuda_device = o->device;
    std::vector<std::string> ignored;
    const Inputs in = load_inputs(o->inputs, &ignored);
    for (const auto& name : ignored) std::fprintf(stderr, "note: ignoring %s (not a model input)\n", name.c_str());
    auto engine = Engine::load(o->plan, eo);
    auto ctx = engine->create_context();
    RunOptions ro;
    ro.output_hidden_state = o->hidden;
    ro.pack = o->pack;
    const auto t0 = std::chrono::steady_clock::now();
    const Outputs out = ctx->run(in, ro);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!o->output.empty())
      save_outputs(o->output, out, {{"plan", o->plan}, {"layoutrt_version", version()},
                                    {"backend", backend_kind_name(engine->backend())}});
    if (o->json) std::cout << summarize(*engine, in, out, ms).dump(2) << "\n";
  });
}

}  // namespace layoutrt::cli

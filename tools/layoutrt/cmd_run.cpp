// layoutrt run --plan FILE --inputs X --output Y.safetensors [--json]            (tensors in, tensors out)
// layoutrt run --plan FILE --document doc.json [--image page.png] --output result.json [--visualize out.png]
//                                                                                  (a document in, labelled words out)
#include <chrono>
#include <cstdio>
#include <iostream>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/model_io.h"
#include "layoutrt/pipeline.h"
#include <fstream>

namespace layoutrt::cli {

namespace {

nlohmann::json summarize(const Engine& engine, const Inputs& in, const Outputs& out, double ms) {
  const ModelInfo& info = engine.info();
  nlohmann::json j;
  j["backend"] = backend_kind_name(engine.backend());
  j["device"] = engine.device_name();
  j["head"] = head_kind_name(info.head);
  j["precision"] = precision_name(info.precision);
  j["residual"] = dtype_name(info.residual);
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

nlohmann::json document_json(const DocumentResult& r, const Engine& engine, const std::string& tokenizer) {
  nlohmann::json j;
  j["document"] = r.id;
  j["backend"] = backend_kind_name(engine.backend());
  j["precision"] = precision_name(engine.info().precision);
  j["tokenizer"] = tokenizer;
  j["num_tokens"] = r.num_tokens;
  j["windows"] = r.windows;
  j["latency_ms"] = r.ms;
  j["words"] = nlohmann::json::array();
  for (const WordResult& w : r.words) {
    nlohmann::json x = {{"text", w.text}, {"box", w.box}, {"label", w.predicted.empty() ? nullptr : nlohmann::json(w.predicted)}};
    if (!w.predicted.empty()) x["score"] = w.score;
    if (!w.label.empty()) x["gold"] = w.label;
    j["words"].push_back(std::move(x));
  }
  j["entities"] = nlohmann::json::array();
  for (const EntityResult& e : r.entities)
    j["entities"].push_back({{"label", e.label}, {"text", e.text}, {"box", e.box},
                             {"words", {e.first_word, e.last_word}}});
  return j;
}

}  // namespace

void register_run(CLI::App& app) {
  struct Opts {
    std::string plan, inputs, output, backend = "auto";
    std::string document, image, tokenizer, visualize;
    bool json = false, hidden = false, truncate = false, pack = false;
    int threads = 0, device = 0, max_length = 512, stride = 128;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Run a plan on inputs (a directory of .npy files or one .safetensors) or on a document (words + boxes + page)");
  cmd->add_option("--plan", o->plan, "Plan file from `layoutrt build`")->required();
  CLI::Option* inputs = cmd->add_option(
      "--inputs,-i", o->inputs,
      "Directory of input_ids.npy, bbox.npy, attention_mask.npy, pixel_values.npy (as transformers' processor names "
      "them), or one .safetensors with those tensors");
  CLI::Option* document = cmd->add_option(
      "--document,-d", o->document,
      "A FUNSD annotation JSON or an OCR JSON ({image, width, height, words: [{text, box}]}): tokenized, run, and "
      "written as labelled words and entities (token-classification plans)");
  inputs->excludes(document);
  document->excludes(inputs);
  cmd->add_option("--output,-o", o->output,
                  "Output .safetensors (or a directory for .npy files); with --document: result JSON");
  cmd->add_option("--image", o->image, "Page image for --document (default: the one the document names)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Folder with vocab.json + merges.txt (default: beside the plan, else the plan's checkpoint)");
  cmd->add_option("--visualize", o->visualize, "With --document: draw the entities over the page into this PNG");
  cmd->add_option("--max-length", o->max_length, "With --document: tokens per window with <s> and </s>")
      ->capture_default_str();
  cmd->add_option("--stride", o->stride, "With --document: tokens shared by neighbouring windows of long documents")
      ->capture_default_str();
  cmd->add_flag("--truncate", o->truncate,
                "With --document: one window only (as transformers' truncation); words past it get no label");
  cmd->add_flag("--json", o->json, "Print a JSON summary with the predicted labels on stdout");
  cmd->add_flag("--output-hidden", o->hidden, "Also write last_hidden_state");
  cmd->add_flag("--pack", o->pack,
                "Padding-free run: skip tokens with attention_mask 0 (their logits read 0, labels -1)");
  cmd->add_option("--backend", o->backend, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  cmd->add_option("--device", o->device, "CUDA device index")->capture_default_str();
  cmd->callback([o] {
    if (o->inputs.empty() && o->document.empty())
      throw_error(ErrorCode::kInvalidArgument, "run: give --inputs (tensors) or --document (a document JSON)");
    if (o->output.empty() && !o->json && o->visualize.empty())
      throw_error(ErrorCode::kInvalidArgument, "run: give --output and/or --json", o->document.empty() ? "" : " or --visualize");
    EngineOptions eo;
    eo.backend = parse_backend(o->backend);
    eo.cpu_threads = o->threads;
    eo.cuda_device = o->device;
    if (!o->document.empty()) {
      const Document doc = load_document(o->document, o->image);
      auto engine = load_engine(o->plan, eo);
      PipelineOptions po;
      po.max_length = o->max_length;
      po.stride = o->stride;
      po.truncate = o->truncate;
      const std::string tok = o->tokenizer.empty() ? DocumentPipeline::default_tokenizer_dir(o->plan) : o->tokenizer;
      DocumentPipeline pipe(engine->info(), tok, po);
      if (engine->info().visual_embed && doc.image_path.empty())
        std::fprintf(stderr, "note: %s names no page image: running the text-only forward (give --image)\n",
                     o->document.c_str());
      auto ctx = engine->create_context();
      const DocumentResult r = pipe.run(*ctx, doc);
      const nlohmann::json j = document_json(r, *engine, tok);
      if (!o->output.empty()) {
        std::ofstream f(o->output);
        if (!f) throw_error(ErrorCode::kIo, o->output, ": cannot write");
        f << j.dump(2) << "\n";
      }
      if (!o->visualize.empty()) write_visualization(doc, r, o->visualize);
      if (o->json) std::cout << j.dump(2) << "\n";
      return;
    }
    std::vector<std::string> ignored;
    const Inputs in = load_inputs(o->inputs, &ignored);
    for (const auto& name : ignored) std::fprintf(stderr, "note: ignoring %s (not a model input)\n", name.c_str());
    auto engine = load_engine(o->plan, eo);
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

// layoutrt eval --plan FILE --data DIR [--split test] [--json report.json]
// Entity-level precision / recall / F1 (seqeval's default, per label and micro/macro/weighted averages) and label
// accuracy of a token-classification plan over a FUNSD-style folder (<split>/annotations/*.json + images/).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "layoutrt/pipeline.h"
#include "pipeline/evaluate.h"
#include "pipeline/formats.h"

namespace layoutrt::cli {

namespace {

nlohmann::json scores_json(const pipeline::Scores& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support},
          {"predicted", s.predicted}, {"correct", s.correct}};
}

}  // namespace

void register_eval(CLI::App& app) {
  struct Opts {
    std::string plan, data, split = "test", json, tokenizer, backend = "auto";
    int threads = 0, device = 0, max_length = 512, stride = 128, limit = 0;
    bool truncate = false, quiet = false, no_image = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("eval", "Entity-level F1 (seqeval) of a token-classification plan on a FUNSD-style dataset");
  cmd->add_option("--plan", o->plan, "Plan file from `layoutrt build` (token classification)")->required();
  cmd->add_option("--data", o->data, "Dataset folder: <split>/annotations/*.json and <split>/images/")->required();
  cmd->add_option("--split", o->split, "train, test (FUNSD's training_data / testing_data) or a folder name")
      ->capture_default_str();
  cmd->add_option("--json", o->json, "Write the report as JSON here");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Folder with vocab.json + merges.txt (default: beside the plan, else the plan's checkpoint)");
  cmd->add_option("--max-length", o->max_length, "Tokens per window with <s> and </s>")->capture_default_str();
  cmd->add_option("--stride", o->stride, "Tokens shared by neighbouring windows of long documents")
      ->capture_default_str();
  cmd->add_flag("--truncate", o->truncate,
                "Score as transformers' evaluation does: one window of max-length tokens, words past it not scored");
  cmd->add_flag("--no-image", o->no_image, "Do not feed the page images (text-only forward)");
  cmd->add_option("--limit", o->limit, "Only the first N documents (0: all)");
  cmd->add_option("--backend", o->backend, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  cmd->add_option("--device", o->device, "CUDA device index")->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "No progress bar");
  cmd->callback([o] {
    EngineOptions eo;
    eo.backend = parse_backend(o->backend);
    eo.cpu_threads = o->threads;
    eo.cuda_device = o->device;
    std::vector<std::string> docs = pipeline::dataset_documents(o->data, o->split);
    if (o->limit > 0 && static_cast<size_t>(o->limit) < docs.size()) docs.resize(o->limit);
    auto engine = load_engine(o->plan, eo);
    PipelineOptions po;
    po.max_length = o->max_length;
    po.stride = o->stride;
    po.truncate = o->truncate;
    po.use_image = !o->no_image;
    const std::string tok_dir = o->tokenizer.empty() ? DocumentPipeline::default_tokenizer_dir(o->plan) : o->tokenizer;
    DocumentPipeline pipe(engine->info(), tok_dir, po);
    auto ctx = engine->create_context();
    const ProgressFn progress = progress_bar(o->quiet);
    std::vector<std::vector<std::string>> y_true, y_pred;
    int64_t words = 0, scored = 0, windows = 0, tokens = 0;
    double engine_ms = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < docs.size(); ++i) {
      const Document doc = load_document(docs[i]);
      if (!doc.has_labels()) throw_error(ErrorCode::kFormat, docs[i], ": has words without a label; eval needs labels");
      const DocumentResult r = pipe.run(*ctx, doc);
      std::vector<std::string> t, p;
      for (const WordResult& w : r.words) {
        if (w.predicted.empty()) continue;  // no tokens, or cut by --truncate: not scored (as transformers)
        t.push_back(w.label);
        p.push_back(w.predicted);
      }
      words += static_cast<int64_t>(r.words.size());
      scored += static_cast<int64_t>(t.size());
      windows += r.windows;
      tokens += r.num_tokens;
      engine_ms += r.ms;
      y_true.push_back(std::move(t));
      y_pred.push_back(std::move(p));
      if (progress) progress("evaluating " + o->split, static_cast<int64_t>(i + 1), static_cast<int64_t>(docs.size()));
    }
    const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const pipeline::EvalReport rep = pipeline::evaluate(y_true, y_pred);
    std::printf("%-12s %9s %9s %9s %9s\n", "label", "precision", "recall", "f1", "support");
    for (const auto& [type, s] : rep.per_type)
      std::printf("%-12s %9.4f %9.4f %9.4f %9lld\n", type.c_str(), s.precision, s.recall, s.f1,
                  static_cast<long long>(s.support));
    std::printf("%-12s %9.4f %9.4f %9.4f %9lld\n", "micro avg", rep.micro.precision, rep.micro.recall, rep.micro.f1,
                static_cast<long long>(rep.micro.support));
    std::printf("%-12s %9.4f %9.4f %9.4f %9lld\n", "macro avg", rep.macro.precision, rep.macro.recall, rep.macro.f1,
                static_cast<long long>(rep.macro.support));
    std::printf("%-12s %9.4f %9.4f %9.4f %9lld\n", "weighted avg", rep.weighted.precision, rep.weighted.recall,
                rep.weighted.f1, static_cast<long long>(rep.weighted.support));
    std::printf("accuracy %.4f over %lld words (%lld of %lld scored); %zu documents, %lld windows, %.1f s\n",
                rep.accuracy, static_cast<long long>(rep.labels), static_cast<long long>(scored),
                static_cast<long long>(words), docs.size(), static_cast<long long>(windows), wall_s);
    if (!o->json.empty()) {
      const ModelInfo& info = engine->info();
      nlohmann::json j;
      j["plan"] = o->plan;
      j["data"] = o->data;
      j["split"] = o->split;
      j["documents"] = docs.size();
      j["words"] = words;
      j["words_scored"] = scored;
      j["tokens"] = tokens;
      j["windows"] = windows;
      j["mode"] = o->truncate ? "truncate" : "windows";
      j["max_length"] = o->max_length;
      j["stride"] = o->stride;
      j["precision_policy"] = precision_name(info.precision);
      j["backend"] = backend_kind_name(engine->backend());
      j["device"] = engine->device_name();
      j["accuracy"] = rep.accuracy;
      j["micro"] = scores_json(rep.micro);
      j["macro"] = scores_json(rep.macro);
      j["weighted"] = scores_json(rep.weighted);
      for (const auto& [type, s] : rep.per_type) j["per_label"][type] = scores_json(s);
      j["engine_ms"] = engine_ms;
      j["wall_s"] = wall_s;
      std::ofstream f(o->json);
      if (!f) throw_error(ErrorCode::kIo, o->json, ": cannot write");
      f << j.dump(2) << "\n";
    }
  });
}

}  // namespace layoutrt::cli

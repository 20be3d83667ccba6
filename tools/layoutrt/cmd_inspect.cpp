// layoutrt inspect FILE.plan: the plan header, readably.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace layoutrt::cli {

void register_inspect(CLI::App& app) {
  struct Opts {
    std::string plan;
    bool json = false, tensors = false, no_verify = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("inspect", "Print a plan's header: model, head, labels, precision, tensors");
  cmd->add_option("plan", o->plan, "Plan file")->required();
  cmd->add_flag("--json", o->json, "Print the raw JSON header");
  cmd->add_flag("--tensors", o->tensors, "List every tensor");
  cmd->add_flag("--no-verify", o->no_verify, "Skip the checksum (faster on large plans)");
  cmd->callback([o] {
    const nlohmann::json h = nlohmann::json::parse(inspect_plan(o->plan, !o->no_verify));
    if (o->json) {
      std::cout << h.dump(2) << "\n";
      return;
    }
    const auto& c = h.at("model").at("config");
    uint64_t bytes = 0;
    for (const auto& t : h.at("tensors")) bytes += t.at("bytes").get<uint64_t>();
    std::printf("plan          %s (%.1f MB, checksum %s)\n", o->plan.c_str(), h.at("file_bytes").get<double>() / 1e6,
                h.at("checksum").get<std::string>().c_str());
    std::printf("built by      layoutrt %s at %s\n", h.at("layoutrt_version").get<std::string>().c_str(),
                h.at("created_utc").get<std::string>().c_str());
    std::printf("checkpoint    %s (%s)\n", h.at("build").at("checkpoint").get<std::string>().c_str(),
                h.at("build").at("checkpoint_dtype").get<std::string>().c_str());
    std::printf("model         LayoutLMv3, hidden %d, %d layers, %d heads, intermediate %d, vocab %d\n",
                c.at("hidden_size").get<int>(), c.at("num_hidden_layers").get<int>(),
                c.at("num_attention_heads").get<int>(), c.at("intermediate_size").get<int>(),
                c.at("vocab_size").get<int>());
    std::printf("inputs        text %s, image %s (%dx%d, patch %d), 1D bias %s, 2D bias %s\n",
                c.at("text_embed").get<bool>() ? "yes" : "no", c.at("visual_embed").get<bool>() ? "yes" : "no",
                c.at("input_size").get<int>(), c.at("input_size").get<int>(), c.at("patch_size").get<int>(),
                c.at("has_relative_attention_bias").get<bool>() ? "yes" : "no",
                c.at("has_spatial_attention_bias").get<bool>() ? "yes" : "no");
    std::printf("head          %s\n", h.at("model").at("head").get<std::string>().c_str());
    const auto& labels = h.at("model").at("labels");
    if (h.at("model").at("head") != "base" && h.at("model").at("head") != "question_answering") {
      std::string s;
      for (size_t i = 0; i < labels.size(); ++i) s += (i ? ", " : "") + std::to_string(i) + "=" + labels[i].get<std::string>();
      std::printf("labels        %zu: %s\n", labels.size(), s.c_str());
    }
    const auto& p = h.at("precision");
    std::printf("precision     %s (embeddings %s, encoder %s, heads %s; softmax/LayerNorm statistics %s)\n",
                p.at("policy").get<std::string>().c_str(), p.at("embeddings").get<std::string>().c_str(),
                p.at("encoder").get<std::string>().c_str(), p.at("heads").get<std::string>().c_str(),
                p.at("softmax").get<std::string>().c_str());
    std::printf("limits        max batch %d, max text tokens %d\n", h.at("build").at("max_batch").get<int>(),
                h.at("build").at("max_text_tokens").get<int>());
    std::printf("tensors       %zu, %.1f MB\n", h.at("tensors").size(), bytes / 1e6);
    if (o->tensors)
      for (const auto& t : h.at("tensors"))
        std::printf("  %-55s %-5s %s\n", t.at("name").get<std::string>().c_str(),
                    t.at("dtype").get<std::string>().c_str(), t.at("shape").dump().c_str());
  });
}

}  // namespace layoutrt::cli

// layoutrt build --checkpoint DIR --precision fp32 [--max-batch N] [--residual f32|native] --output FILE.plan
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"

namespace layoutrt::cli {

void register_build(CLI::App& app) {
  struct Opts {
    BuildOptions build;
    std::string precision = "fp32";
    std::string residual = "native";
    std::string tune = "auto";
    std::string output;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("build", "Build a plan file from a HuggingFace LayoutLMv3 checkpoint directory");
  cmd->add_option("--checkpoint,-c", o->build.checkpoint_dir,
                  "Checkpoint directory: config.json + model.safetensors (or model.safetensors.index.json)")
      ->required();
  cmd->add_option("--precision,-p", o->precision, "Precision policy: " + precision_choices())->capture_default_str();
  cmd->add_option("--max-batch", o->build.max_batch, "Largest batch an execution context accepts")
      ->capture_default_str();
  cmd->add_option("--max-text-tokens", o->build.max_text_tokens, "Largest number of text tokens T per sequence")
      ->capture_default_str();
  cmd->add_option("--head", o->build.head,
                  "Task head: base, token, sequence or qa (default: from config.json architectures / tensor names)");
  cmd->add_option("--residual", o->residual,
                  "fp16/bf16/mixed: residual stream dtype: native (16-bit) or f32 (every LayerNorm's output also kept "
                  "in FP32 for the next residual add and the head: ~5-12 % lower error, ~7 % slower at batch 32)")
      ->check(CLI::IsMember({"f32", "native"}))
      ->capture_default_str();
  cmd->add_option("--tune-gemm", o->tune,
                  "Time cuBLASLt's GEMM algorithms for the plan's shapes on the GPU and store the fastest in the plan "
                  "(auto: when a CUDA device is present; an engine on another GPU model re-tunes with a warning)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd->add_option("--device", o->build.cuda_device, "CUDA device to tune on")->capture_default_str();
  cmd->add_option("--output,-o", o->output, "Plan file to write")->required();
  cmd->add_flag("--quiet,-q", o->quiet, "No progress output");
  cmd->callback([o] {
    auto p = precision_from_name(o->precision);
    if (!p) throw_error(ErrorCode::kInvalidArgument, "--precision ", o->precision, ": expected ", precision_choices());
    o->build.precision = *p;
    o->build.fp32_residual = o->residual == "f32";
    o->build.tune_gemm = o->tune == "on" ? GemmTuning::kOn : o->tune == "off" ? GemmTuning::kOff : GemmTuning::kAuto;
    o->build.progress = progress_bar(o->quiet);
    const auto t0 = std::chrono::steady_clock::now();
    build_plan(o->build, o->output);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!o->quiet)
      std::fprintf(stderr, "wrote %s (%.1f MB, %s) in %.1fs\n", o->output.c_str(),
                   std::filesystem::file_size(o->output) / 1e6, precision_name(*p), secs);
  });
}

}  // namespace layoutrt::cli

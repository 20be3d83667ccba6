// Shared pieces of the layoutrt subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "layoutrt/engine.h"

namespace layoutrt::cli {

// A progress bar on stderr: redrawn in place on a terminal, a few plain lines otherwise; silent when quiet.
ProgressFn progress_bar(bool quiet);

BackendKind parse_backend(const std::string& s);

// Engine::load, then the engine's warnings on stderr (GEMM algorithms tuned on another GPU model: re-tuned).
std::shared_ptr<Engine> load_engine(const std::string& plan, const EngineOptions& options);

// Each subcommand registers its options and its action on the app.
void register_build(CLI::App& app);
void register_inspect(CLI::App& app);
void register_run(CLI::App& app);
void register_bench(CLI::App& app);
void register_compare(CLI::App& app);
void register_eval(CLI::App& app);
void register_encode(CLI::App& app);

}  // namespace layoutrt::cli

#include "cli_common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace layoutrt::cli {

std::shared_ptr<Engine> load_engine(const std::string& plan, const EngineOptions& options) {
  auto engine = Engine::load(plan, options);
  const std::string g = engine->gemm_tuning();
  if (g.rfind("warning: ", 0) == 0) std::fprintf(stderr, "%s: %s\n", plan.c_str(), g.c_str());
  return engine;
}

ProgressFn progress_bar(bool quiet) {
  if (quiet) return {};
  struct State {
    std::string label;
    int last_percent = -1;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  };
  auto st = std::make_shared<State>();
  const bool tty = isatty(fileno(stderr));
  return [st, tty](const std::string& label, int64_t done, int64_t total) {
    const int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
    if (label != st->label) {
      if (!st->label.empty() && tty) std::fputc('\n', stderr);
      st->label = label;
      st->last_percent = -1;
      st->start = std::chrono::steady_clock::now();
    }
    if (percent == st->last_percent) return;
    const bool line_worthy = tty || percent == 100 || st->last_percent < 0;
    st->last_percent = percent;
    if (!line_worthy) return;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - st->start).count();
    const int width = 30, fill = percent * width / 100;
    std::fprintf(stderr, "%s[%.*s%*s] %3d%% %s (%.1fs)%s", tty ? "\r" : "", fill,
                 "##############################", width - fill, "", percent, label.c_str(), secs,
                 tty ? "" : "\n");
    if (tty && percent == 100) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

BackendKind parse_backend(const std::string& s) {
  if (s == "auto") return BackendKind::kAuto;
  if (s == "cpu") return BackendKind::kCPU;
  if (s == "cuda" || s == "gpu") return BackendKind::kCUDA;
  throw_error(ErrorCode::kInvalidArgument, "--backend ", s, ": expected auto, cpu or cuda");
}

}  // namespace layoutrt::cli

// layoutrt: build LayoutLMv3 plans from HuggingFace checkpoints and run them.
#include <cstdio>
#include <exception>

#include "cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"layoutrt " + std::string(layoutrt::version()) +
               " - a C++/CUDA inference engine for LayoutLMv3\n"
               "  build a plan once from a HuggingFace checkpoint, then run, bench and compare it."};
  app.set_version_flag("--version", std::string(layoutrt::version()));
  app.require_subcommand(1);
  layoutrt::cli::register_build(app);
  layoutrt::cli::register_inspect(app);
  layoutrt::cli::register_run(app);
  layoutrt::cli::register_bench(app);
  layoutrt::cli::register_compare(app);
  layoutrt::cli::register_eval(app);
  layoutrt::cli::register_encode(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a subcommand's verdict already printed (compare: 1 = tolerance missed)
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // --help / --version: 0; usage errors: 2
  } catch (const layoutrt::Error& e) {
    std::fprintf(stderr, "layoutrt: error: %s\n", e.what());
    return layoutrt::exit_code(e.code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "layoutrt: error: out of host memory\n");
    return layoutrt::exit_code(layoutrt::ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "layoutrt: internal error: %s\n", e.what());
    return 70;
  }
  return 0;
}

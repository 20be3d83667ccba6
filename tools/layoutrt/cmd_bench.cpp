// layoutrt bench: placeholder registration until the CUDA backend lands (issue "Core engine, part 2").
#include "cli_common.h"

namespace layoutrt::cli {
void register_bench(CLI::App&) {}
void register_compare(CLI::App&) {}
}  // namespace layoutrt::cli

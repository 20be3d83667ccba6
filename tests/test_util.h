// Helpers shared by the tests: fixture paths, error metrics, scratch directories.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "layoutrt/error.h"
#include "layoutrt/tensor.h"

namespace layoutrt::test {

inline std::string fixtures(const std::string& rel = "") {
  return (std::filesystem::path(LAYOUTRT_FIXTURES_DIR) / rel).string();
}

#ifdef LAYOUTRT_CLI
// Runs the layoutrt CLI binary with `args` (shell-quoted by the caller), stdout and stderr together.
struct CliResult {
  int rc = -1;
  std::string output;
};
inline CliResult cli(const std::string& args) {
  const std::string command = std::string("'") + LAYOUTRT_CLI + "' " + args + " 2>&1";
  CliResult r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}
#endif
inline bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// A fresh directory under the system temp dir, removed at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("layoutrt_" + tag + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct Diff {
  double rel_l2 = 0, max_abs = 0;
  int64_t nonfinite = 0;
};

// ||a - ref|| / ||ref|| and max |a - ref| over float tensors (any float dtype), NaN/Inf in `a` counted.
inline Diff compare(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.shape(), ref.shape());
  const Tensor x = a.to(DType::kF64), y = ref.to(DType::kF64);
  Diff d;
  double num = 0, den = 0;
  const int64_t n = std::min(x.numel(), y.numel());
  for (int64_t i = 0; i < n; ++i) {
    const double u = x.data_as<double>()[i], v = y.data_as<double>()[i];
    if (!std::isfinite(u)) { ++d.nonfinite; continue; }
    num += (u - v) * (u - v);
    den += v * v;
    d.max_abs = std::max(d.max_abs, std::abs(u - v));
  }
  d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return d;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs `fn`, expects a layoutrt::Error with `code` whose message contains every string of `needles`.
template <class Fn>
void expect_error(Fn&& fn, ErrorCode code, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected layoutrt::Error (" << error_code_name(code) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << n << "\"";
  }
}

// Sets environment variable `name` to `value` (nullptr: leaves it) for the scope, restoring the previous value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace layoutrt::test

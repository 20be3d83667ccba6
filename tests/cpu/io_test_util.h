// Helpers for the file-format tests: scratch directories, raw bytes, error expectations and byte-mutation fuzzing.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "layoutrt/error.h"

namespace layoutrt::test {

inline std::string io_fixture(const std::string& name) { return std::string(LAYOUTRT_FIXTURES_DIR) + "/io/" + name; }

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class IoScratchDir {
 public:
  IoScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "layoutrt_io_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~IoScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

inline std::string le_bytes(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i, v >>= 8) s += static_cast<char>(v & 0xff);
  return s;
}

// Runs f, which must throw layoutrt::Error with `code` and a one-line message containing every needle.
template <class F>
void expect_error(F&& f, ErrorCode code, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no layoutrt::Error thrown (expected " << error_code_name(code) << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << "got " << error_code_name(e.code()) << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// Applies `iterations` random mutations to `valid` (byte flips, biased to the first `header_end` bytes, overwrites with
// syntax characters, truncation, appended junk), writes each to `path` and calls `load`, which may succeed or throw
// layoutrt::Error but nothing else. Returns {loads that succeeded, loads that threw layoutrt::Error}.
inline std::pair<int, int> fuzz_file(const std::string& valid, size_t header_end, const std::string& path,
                                     int iterations, uint32_t seed,
                                     const std::function<void(const std::string&)>& load) {
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng) : 0; };
  const std::string syntax = "{}[]():,\"' -0123456789eE.TFLN\\";
  int ok = 0, errors = 0;
  for (int it = 0; it < iterations; ++it) {
    std::string b = valid;
    const int kind = static_cast<int>(pick(4));
    const int n_edits = 1 + static_cast<int>(pick(4));
    for (int k = 0; k < n_edits && kind < 2; ++k) {
      const size_t pos = pick(4) ? pick(header_end) : pick(b.size());
      b[pos] = kind == 0 ? static_cast<char>(b[pos] ^ (1 << pick(8))) : syntax[pick(syntax.size())];
    }
    if (kind == 2) b.resize(pick(b.size()));
    if (kind == 3) for (size_t k = 1 + pick(64); k > 0; --k) b += static_cast<char>(pick(256));
    write_bytes(path, b);
    try {
      load(path);
      ++ok;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mutation " << it << ": non-layoutrt exception: " << e.what();
    } catch (...) {
      ADD_FAILURE() << "mutation " << it << ": unknown exception";
    }
  }
  return {ok, errors};
}

}  // namespace layoutrt::test

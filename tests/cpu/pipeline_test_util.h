// Helpers of the pipeline tests: the gzipped roberta-base tokenizer of tests/fixtures/pipeline, unpacked once.
#pragma once

#ifdef LAYOUTRT_TEST_ZLIB
#include <zlib.h>
#endif

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "test_util.h"

namespace layoutrt::test {

#ifdef LAYOUTRT_TEST_ZLIB
inline void gunzip_file(const std::string& from, const std::string& to) {
  gzFile in = gzopen(from.c_str(), "rb");
  ASSERT_NE(in, nullptr) << from;
  std::ofstream out(to, std::ios::binary);
  char buf[1 << 16];
  int n;
  while ((n = gzread(in, buf, sizeof buf)) > 0) out.write(buf, n);
  gzclose(in);
}
#endif

// Tests that need the roberta tokenizer start with this: they skip where zlib was not found at configure time.
#ifdef LAYOUTRT_TEST_ZLIB
#define LAYOUTRT_REQUIRE_TOKENIZER() (void)0
#else
#define LAYOUTRT_REQUIRE_TOKENIZER() GTEST_SKIP() << "built without zlib: cannot unpack the tokenizer fixture"
#endif

// A folder with vocab.json + merges.txt (roberta-base), valid for the whole test run.
inline std::string roberta_tokenizer_dir() {
  static std::unique_ptr<ScratchDir> dir;
  if (!dir) {
    dir = std::make_unique<ScratchDir>("tokenizer");
#ifdef LAYOUTRT_TEST_ZLIB
    gunzip_file(fixtures("pipeline/tokenizer/vocab.json.gz"), dir->file("vocab.json"));
    gunzip_file(fixtures("pipeline/tokenizer/merges.txt.gz"), dir->file("merges.txt"));
#endif
  }
  return dir->path().string();
}

}  // namespace layoutrt::test

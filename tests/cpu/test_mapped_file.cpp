#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "io_test_util.h"

namespace layoutrt {
namespace {

using test::expect_error;
using test::IoScratchDir;

TEST(MappedFile, MapsWholeFile) {
  IoScratchDir d;
  test::write_bytes(d.path("a.bin"), "hello");
  const auto f = MappedFile::open(d.path("a.bin"));
  EXPECT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), "hello");
  EXPECT_EQ(f->path(), d.path("a.bin"));
}

TEST(MappedFile, EmptyFileHasSizeZero) {
  IoScratchDir d;
  test::write_bytes(d.path("empty"), "");
  const auto f = MappedFile::open(d.path("empty"));
  EXPECT_EQ(f->size(), 0u);
  EXPECT_NE(f->data(), nullptr);
}

TEST(MappedFile, ErrorsNameThePath) {
  IoScratchDir d;
  expect_error([&] { MappedFile::open(d.path("missing.bin")); }, ErrorCode::kNotFound, {"missing.bin", "no such"});
  expect_error([&] { MappedFile::open(d.path("missing_dir/x.bin")); }, ErrorCode::kNotFound, {"missing_dir/x.bin"});
  expect_error([&] { MappedFile::open(d.dir()); }, ErrorCode::kIo, {d.dir(), "directory"});
  ASSERT_EQ(::mkfifo(d.path("fifo").c_str(), 0600), 0);
  expect_error([&] { MappedFile::open(d.path("fifo")); }, ErrorCode::kIo, {"fifo", "not a regular file"});
  if (::geteuid() != 0) {  // root reads files regardless of their mode
    test::write_bytes(d.path("secret"), "x");
    ::chmod(d.path("secret").c_str(), 0);
    expect_error([&] { MappedFile::open(d.path("secret")); }, ErrorCode::kIo, {"secret"});
  }
}

TEST(AtomicFileWriter, ReplacesTheFileOnlyOnCommit) {
  IoScratchDir d;
  const std::string path = d.path("out.bin");
  test::write_bytes(path, "old");
  {
    AtomicFileWriter w(path);
    w.write("new!", 4);
    EXPECT_EQ(test::read_bytes(path), "old");
  }  // abandoned: the old file stays, the temporary goes
  EXPECT_EQ(test::read_bytes(path), "old");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  AtomicFileWriter w(path);
  w.write("new!", 4);
  w.commit();
  EXPECT_EQ(test::read_bytes(path), "new!");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  expect_error([&] { AtomicFileWriter(d.path("no_dir/x")); }, ErrorCode::kIo, {"no_dir/x"});
}

}  // namespace
}  // namespace layoutrt

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/half.h"
#include "io/format_util.h"
#include "io/safetensors_writer.h"
#include "io_test_util.h"
#include "model/safetensors.h"

namespace layoutrt {
namespace {

using test::expect_error;
using test::IoScratchDir;

constexpr DType kAllDTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,   DType::kI32,
                                DType::kI16, DType::kI8,  DType::kU8,   DType::kBool, DType::kF8E4M3};

Tensor patterned(DType dtype, Shape shape, int seed) {
  Tensor t(dtype, std::move(shape));
  auto* p = static_cast<uint8_t*>(t.mutable_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 37 + seed * 11 + 5);
  if (dtype == DType::kBool) for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.data()), t.nbytes()); }

// A safetensors file from raw header text and a data buffer of `buffer` bytes (or explicit bytes).
std::string st_bytes(const std::string& header, const std::string& buffer) {
  return test::le_bytes(header.size(), 8) + header + buffer;
}

// ---- round trips ---------------------------------------------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDType) {
  IoScratchDir d;
  std::vector<std::pair<std::string, Tensor>> tensors;
  int seed = 0;
  for (DType t : kAllDTypes) tensors.emplace_back(std::string("t.") + dtype_name(t), patterned(t, {2, 3}, ++seed));
  tensors.emplace_back("scalar", patterned(DType::kF32, {}, 99));
  tensors.emplace_back("empty", Tensor(DType::kF16, {0, 3}));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"unicode", "caf\xc3\xa9"}};
  write_safetensors(d.path("rt.safetensors"), tensors, meta);
  EXPECT_FALSE(std::filesystem::exists(d.path("rt.safetensors.tmp")));

  const auto f = SafetensorsFile::open(d.path("rt.safetensors"));
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.entries().size(), tensors.size());
  EXPECT_TRUE(std::is_sorted(f.entries().begin(), f.entries().end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  uint64_t offset = 0;  // laid out in the given order, contiguously
  for (const auto& [name, t] : tensors) {
    const SafetensorsEntry* e = f.find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_EQ(e->dtype, t.dtype()) << name;
    EXPECT_EQ(e->shape, t.shape()) << name;
    EXPECT_EQ(e->data_begin, offset) << name;
    offset = e->data_end;
    const Tensor r = f.tensor(name);
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_EQ(bytes_of(r), bytes_of(t)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % dtype_size(r.dtype()), 0u) << name;
  }
  EXPECT_EQ(f.find("nope"), nullptr);

  const std::string raw = test::read_bytes(d.path("rt.safetensors"));
  const uint64_t n = load_le(reinterpret_cast<const uint8_t*>(raw.data()), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + n + offset);
}

TEST(Safetensors, TensorsAreZeroCopyAndOutliveTheFile) {
  IoScratchDir d;
  write_safetensors(d.path("z.safetensors"), {{"w", patterned(DType::kF32, {4}, 1)}});
  Tensor t;
  {
    const auto f = SafetensorsFile::open(d.path("z.safetensors"));
    t = f.tensor("w");
    EXPECT_EQ(f.tensor("w").data(), t.data());  // both views point into the one mapping
  }
  EXPECT_EQ(bytes_of(t), bytes_of(patterned(DType::kF32, {4}, 1)));  // the view keeps the mapping alive
}

TEST(Safetensors, MisalignedDataIsCopied) {
  IoScratchDir d;
  // A 9-byte header puts the data buffer at file offset 17: not aligned for F32.
  const float v[2] = {1.5f, -2.0f};
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(9 + 64 - header.size() % 64, ' ');
  ASSERT_EQ((8 + header.size()) % 4, 1u);
  test::write_bytes(d.path("m.safetensors"), st_bytes(header, std::string(reinterpret_cast<const char*>(v), 8)));
  const Tensor t = SafetensorsFile::open(d.path("m.safetensors")).tensor("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 4, 0u);
  EXPECT_EQ(t.data_as<float>()[0], 1.5f);
  EXPECT_EQ(t.data_as<float>()[1], -2.0f);
}

TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  const auto f = SafetensorsFile::open(test::io_fixture("mixed.safetensors"));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "layoutrt fixture"}}));
  ASSERT_EQ(f.entries().size(), 5u);

  const Tensor f32 = f.tensor("f32");
  ASSERT_EQ(f32.dtype(), DType::kF32);
  ASSERT_EQ(f32.shape(), (Shape{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f32.data_as<float>()[i], i * 0.25f - 0.5f);

  const Tensor f16 = f.tensor("f16");
  ASSERT_EQ(f16.dtype(), DType::kF16);
  ASSERT_EQ(f16.shape(), (Shape{4}));
  const float f16_want[] = {1.5f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(half_to_float(f16.data_as<uint16_t>()[i]), f16_want[i]);

  const Tensor bf16 = f.tensor("bf16");
  ASSERT_EQ(bf16.dtype(), DType::kBF16);
  ASSERT_EQ(bf16.shape(), (Shape{2, 2}));
  const float bf16_want[] = {1.0f, -3.5f, std::ldexp(1.0f, 100), -std::ldexp(1.0f, -100)};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bf16_to_float(bf16.data_as<uint16_t>()[i]), bf16_want[i]);

  const Tensor i64 = f.tensor("i64");
  ASSERT_EQ(i64.dtype(), DType::kI64);
  const int64_t i64_want[] = {-(int64_t{1} << 40), 0, 7, int64_t{1} << 62};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(i64.data_as<int64_t>()[i], i64_want[i]);

  const Tensor scalar = f.tensor("scalar");
  EXPECT_EQ(scalar.shape(), Shape{});
  EXPECT_EQ(scalar.data_as<float>()[0], 3.0f);
}

// ---- corrupt files -------------------------------------------------------------------------------------------------

struct Corruption {
  const char* label;
  std::string bytes;
  ErrorCode code;
  std::vector<std::string> needles;
};

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}
std::string one(const std::string& name, const std::string& e) { return "{\"" + name + "\":" + e + "}"; }

TEST(Safetensors, RejectsEveryCorruption) {
  const std::string w8 = entry("\"F32\"", "[2]", "[0,8]");
  const std::vector<Corruption> cases = {
      {"short file", "abc", ErrorCode::kFormat, {"3 bytes"}},
      {"empty file", "", ErrorCode::kFormat, {"0 bytes"}},
      {"absurd header length", test::le_bytes(uint64_t{1} << 62, 8) + "{}", ErrorCode::kFormat,
       {"4611686018427387904", "absurd"}},
      {"header longer than file", test::le_bytes(1000, 8) + std::string(50, ' '), ErrorCode::kFormat,
       {"1000", "50", "58"}},
      {"not json", st_bytes(R"({"w": )", ""), ErrorCode::kFormat, {"not valid JSON"}},
      {"not utf-8", st_bytes("{\"\xff\":1}", ""), ErrorCode::kFormat, {"not valid JSON"}},
      {"not an object", st_bytes("[1, 2]", ""), ErrorCode::kFormat, {"array"}},
      {"entry not an object", st_bytes(R"({"w": 5})", ""), ErrorCode::kFormat, {"\"w\"", "number"}},
      {"missing dtype", st_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "dtype"}},
      {"dtype not a string", st_bytes(one("w", entry("5", "[2]", "[0,8]")), std::string(8, 0)), ErrorCode::kFormat,
       {"\"w\"", "dtype"}},
      {"unknown dtype", st_bytes(one("w", entry("\"Q7\"", "[2]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kDTypeMismatch, {"\"w\"", "Q7"}},
      {"missing shape", st_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "shape"}},
      {"shape not an array", st_bytes(one("w", entry("\"F32\"", "2", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "shape", "number"}},
      {"negative dim", st_bytes(one("w", entry("\"F32\"", "[2,-3]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "shape[1]", "-3"}},
      {"fractional dim", st_bytes(one("w", entry("\"F32\"", "[2.5]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "shape[0]", "2.5"}},
      {"string dim", st_bytes(one("w", entry("\"F32\"", "[\"2\"]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "shape[0]"}},
      {"nested dim", st_bytes(one("w", entry("\"F32\"", "[[2]]", "[0,8]")), std::string(8, 0)), ErrorCode::kFormat,
       {"nests deeper"}},
      {"numel overflow", st_bytes(one("w", entry("\"F32\"", "[4294967296,4294967296,16]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "[4294967296, 4294967296, 16]", "overflow"}},
      {"dim beyond int64", st_bytes(one("w", entry("\"F32\"", "[18446744073709551615]", "[0,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "18446744073709551615"}},
      {"missing offsets", st_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", std::string(8, 0)), ErrorCode::kFormat,
       {"\"w\"", "data_offsets"}},
      {"three offsets", st_bytes(one("w", entry("\"F32\"", "[2]", "[0,4,8]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "3 values"}},
      {"negative offset", st_bytes(one("w", entry("\"F32\"", "[2]", "[-8,0]")), std::string(8, 0)),
       ErrorCode::kFormat, {"\"w\"", "data_offsets[0]", "-8"}},
      {"begin > end", st_bytes(one("w", entry("\"F32\"", "[1]", "[8,4]")), std::string(8, 0)), ErrorCode::kFormat,
       {"\"w\"", "[8, 4]", "begin > end"}},
      {"end beyond buffer", st_bytes(one("w", entry("\"F32\"", "[250]", "[0,1000]")), std::string(16, 0)),
       ErrorCode::kFormat, {"\"w\"", "1000", "16 bytes"}},
      {"byte count", st_bytes(one("w", entry("\"F32\"", "[2,3]", "[0,20]")), std::string(20, 0)),
       ErrorCode::kFormat, {"\"w\"", "F32", "[2, 3]", "24", "20"}},
      {"overlap",
       st_bytes(R"({"a":)" + entry("\"F32\"", "[4]", "[0,16]") + R"(,"b":)" + entry("\"F32\"", "[4]", "[8,24]") + "}",
                std::string(24, 0)),
       ErrorCode::kFormat, {"\"a\"", "\"b\"", "overlaps"}},
      {"duplicate name", st_bytes(R"({"a":)" + w8 + R"(,"a":)" + w8 + "}", std::string(8, 0)), ErrorCode::kFormat,
       {"duplicate", "\"a\""}},
      {"duplicate field", st_bytes(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})",
                                   std::string(8, 0)),
       ErrorCode::kFormat, {"duplicate", "\"dtype\""}},
      {"hole", st_bytes(R"({"a":)" + w8 + R"(,"b":)" + entry("\"F32\"", "[2]", "[16,24]") + "}", std::string(24, 0)),
       ErrorCode::kFormat, {"[8, 16)", "\"b\""}},
      {"trailing bytes", st_bytes(one("a", w8), std::string(16, 0)), ErrorCode::kFormat, {"[8, 16)", "trailing"}},
      {"metadata not an object", st_bytes(R"({"__metadata__":[1]})", ""), ErrorCode::kFormat, {"__metadata__"}},
      {"metadata value not a string", st_bytes(R"({"__metadata__":{"k":1}})", ""), ErrorCode::kFormat,
       {"__metadata__", "\"k\""}},
  };
  IoScratchDir d;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    test::write_bytes(d.path("bad.safetensors"), c.bytes);
    auto needles = c.needles;
    needles.push_back("bad.safetensors");
    expect_error([&] { SafetensorsFile::open(d.path("bad.safetensors")); }, c.code, needles);
  }
}

TEST(Safetensors, OpenAndLookupErrors) {
  IoScratchDir d;
  expect_error([&] { SafetensorsFile::open(d.path("none.safetensors")); }, ErrorCode::kNotFound, {"none.safetensors"});
  expect_error([&] { SafetensorsFile::open(d.dir()); }, ErrorCode::kIo, {"directory"});
  write_safetensors(d.path("ok.safetensors"), {{"w", Tensor(DType::kF32, {1})}});
  const auto f = SafetensorsFile::open(d.path("ok.safetensors"));
  expect_error([&] { f.tensor("missing.weight"); }, ErrorCode::kMissingTensor, {"ok.safetensors", "missing.weight"});
  // An empty header and buffer is a valid (empty) file.
  test::write_bytes(d.path("empty.safetensors"), st_bytes("{}      ", ""));
  EXPECT_TRUE(SafetensorsFile::open(d.path("empty.safetensors")).entries().empty());
}

TEST(SafetensorsWriter, RejectsBadInputAndReportsIoErrors) {
  IoScratchDir d;
  const Tensor t(DType::kF32, {2});
  expect_error([&] { write_safetensors(d.path("a.safetensors"), {{"w", Tensor()}}); }, ErrorCode::kInvalidArgument,
               {"a.safetensors", "\"w\"", "undefined"});
  expect_error([&] { write_safetensors(d.path("a.safetensors"), {{"w", t}, {"w", t}}); }, ErrorCode::kInvalidArgument,
               {"\"w\"", "twice"});
  expect_error([&] { write_safetensors(d.path("a.safetensors"), {{"__metadata__", t}}, {{"k", "v"}}); },
               ErrorCode::kInvalidArgument, {"reserved"});
  expect_error([&] { write_safetensors(d.path("a.safetensors"), {{"bad\xff", t}}); }, ErrorCode::kInvalidArgument,
               {"UTF-8"});
  expect_error([&] { write_safetensors(d.path("no_dir/a.safetensors"), {{"w", t}}); }, ErrorCode::kIo,
               {"no_dir/a.safetensors"});
  EXPECT_TRUE(std::filesystem::is_empty(d.dir()));  // no temporary left behind
}

// ---- checkpoint directories ----------------------------------------------------------------------------------------

void write_index(const std::string& dir, const std::string& json) {
  test::write_bytes(dir + "/model.safetensors.index.json", json);
}

TEST(SafetensorsCheckpoint, SingleFile) {
  IoScratchDir d;
  write_safetensors(d.path("model.safetensors"),
                    {{"b", patterned(DType::kF32, {3}, 1)}, {"a", Tensor(DType::kI64, {2})}});
  const auto ck = SafetensorsCheckpoint::open_dir(d.dir());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  ASSERT_NE(ck.find("b"), nullptr);
  EXPECT_EQ(ck.find("b")->shape, Shape{3});
  EXPECT_EQ(ck.find("c"), nullptr);
  EXPECT_EQ(bytes_of(ck.tensor("b")), bytes_of(patterned(DType::kF32, {3}, 1)));
  EXPECT_EQ(ck.file_of("a"), d.path("model.safetensors"));
  expect_error([&] { ck.tensor("c"); }, ErrorCode::kMissingTensor, {"\"c\"", d.dir()});
  expect_error([&] { ck.file_of("c"); }, ErrorCode::kMissingTensor, {"\"c\"", d.dir()});
}

TEST(SafetensorsCheckpoint, Sharded) {
  IoScratchDir d;
  write_safetensors(d.path("s1.safetensors"),
                    {{"x", patterned(DType::kF16, {2, 2}, 1)}, {"y", Tensor(DType::kF32, {1})}});
  write_safetensors(d.path("s2.safetensors"), {{"a", patterned(DType::kBF16, {5}, 2)}});
  write_index(d.dir(), R"({"metadata":{"total_size":30},"weight_map":{"x":"s1.safetensors","y":"s1.safetensors",)"
                       R"("a":"s2.safetensors"}})");
  const auto ck = SafetensorsCheckpoint::open_dir(d.dir());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "x", "y"}));
  EXPECT_EQ(ck.file_of("a"), d.path("s2.safetensors"));
  EXPECT_EQ(ck.file_of("x"), d.path("s1.safetensors"));
  EXPECT_EQ(bytes_of(ck.tensor("a")), bytes_of(patterned(DType::kBF16, {5}, 2)));
  EXPECT_EQ(bytes_of(ck.tensor("x")), bytes_of(patterned(DType::kF16, {2, 2}, 1)));
  expect_error([&] { ck.tensor("z"); }, ErrorCode::kMissingTensor, {"\"z\"", d.dir()});
}

TEST(SafetensorsCheckpoint, SingleFileWinsOverIndex) {
  IoScratchDir d;
  write_safetensors(d.path("model.safetensors"), {{"w", Tensor(DType::kF32, {1})}});
  write_index(d.dir(), "not even json");
  EXPECT_EQ(SafetensorsCheckpoint::open_dir(d.dir()).names(), std::vector<std::string>{"w"});
}

TEST(SafetensorsCheckpoint, RejectsBadDirectoriesAndIndexes) {
  IoScratchDir d;
  expect_error([&] { SafetensorsCheckpoint::open_dir(d.path("nope")); }, ErrorCode::kNotFound, {"nope"});
  expect_error([&] { SafetensorsCheckpoint::open_dir(d.dir()); }, ErrorCode::kNotFound,
               {d.dir(), "model.safetensors"});
  write_safetensors(d.path("s1.safetensors"), {{"x", Tensor(DType::kF32, {1})}, {"y", Tensor(DType::kF32, {1})}});
  write_safetensors(d.path("s2.safetensors"), {{"x", Tensor(DType::kF32, {1})}});
  expect_error([&] { SafetensorsCheckpoint::open_dir(d.path("s1.safetensors")); }, ErrorCode::kInvalidArgument,
               {"s1.safetensors", "not a directory"});

  struct Case { const char* label; std::string index; ErrorCode code; std::vector<std::string> needles; };
  const std::string kIndex = "model.safetensors.index.json";
  const std::vector<Case> cases = {
      {"invalid json", "{", ErrorCode::kFormat, {"index", "not valid JSON", kIndex}},
      {"not an object", "[]", ErrorCode::kFormat, {"array", kIndex}},
      {"no weight_map", R"({"metadata":{}})", ErrorCode::kFormat, {"weight_map", kIndex}},
      {"weight_map not an object", R"({"weight_map":[]})", ErrorCode::kFormat, {"weight_map", "array", kIndex}},
      {"shard not a string", R"({"weight_map":{"x":1}})", ErrorCode::kFormat, {"\"x\"", "number", kIndex}},
      {"shard is a path", R"({"weight_map":{"x":"../s1.safetensors"}})", ErrorCode::kFormat,
       {"\"x\"", "../s1.safetensors", kIndex}},
      {"shard missing", R"({"weight_map":{"x":"s9.safetensors"}})", ErrorCode::kNotFound,
       {"s9.safetensors", "\"x\"", kIndex}},
      {"tensor not in its shard", R"({"weight_map":{"x":"s1.safetensors","q":"s1.safetensors"}})", ErrorCode::kFormat,
       {"\"q\"", "s1.safetensors", "does not hold", kIndex}},
      {"tensor in two shards", R"({"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})", ErrorCode::kFormat,
       {"\"x\"", "s1.safetensors", "s2.safetensors", "two shards"}},
      {"duplicate index entry", R"({"weight_map":{"y":"s1.safetensors","y":"s1.safetensors"}})", ErrorCode::kFormat,
       {"duplicate", "\"y\"", kIndex}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    write_index(d.dir(), c.index);
    expect_error([&] { SafetensorsCheckpoint::open_dir(d.dir()); }, c.code, c.needles);
  }
}

// ---- robustness ----------------------------------------------------------------------------------------------------

TEST(Safetensors, RandomCorruptionsGiveOnlyLayoutrtErrors) {
  IoScratchDir d;
  write_safetensors(d.path("valid.safetensors"),
                    {{"emb.weight", patterned(DType::kF32, {3, 2}, 1)},
                     {"ln.bias", patterned(DType::kBF16, {4}, 2)},
                     {"ids", patterned(DType::kI64, {2}, 3)},
                     {"s", patterned(DType::kF16, {}, 4)}},
                    {{"format", "pt"}});
  const std::string valid = test::read_bytes(d.path("valid.safetensors"));
  const size_t header_end = 8 + load_le(reinterpret_cast<const uint8_t*>(valid.data()), 8);
  const auto [ok, errors] = test::fuzz_file(valid, header_end, d.path("fuzz.safetensors"), 2000, 1234,
                                            [](const std::string& path) {
    const auto f = SafetensorsFile::open(path);
    for (const auto& e : f.entries()) {  // touch every byte so a sanitizer sees any out-of-bounds view
      const Tensor t = f.tensor(e.name);
      const auto* p = static_cast<const uint8_t*>(t.data());
      volatile unsigned sum = 0;
      for (size_t i = 0; i < t.nbytes(); ++i) sum = sum + p[i];
    }
  });
  EXPECT_GT(ok, 0);
  EXPECT_GT(errors, 1000);
  std::cout << "[          ] safetensors mutations: " << ok << " loaded, " << errors << " rejected\n";
}

}  // namespace
}  // namespace layoutrt

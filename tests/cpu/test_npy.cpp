#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "io/format_util.h"
#include "io/npy.h"
#include "io_test_util.h"

namespace layoutrt {
namespace {

using test::expect_error;
using test::io_fixture;
using test::IoScratchDir;

// An npy file from a raw header dict and data bytes (version 1.0 unless told).
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict + "\n";
  return std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0' +
         test::le_bytes(header.size(), major == 1 ? 2 : 4) + header + data;
}

std::string npy_dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

template <class T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data_as<T>(), t.data_as<T>() + t.numel());
}

TEST(Npy, RoundTripsEveryDType) {
  IoScratchDir d;
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kF64, DType::kI64, DType::kI32,
                          DType::kI16, DType::kI8,  DType::kU8,  DType::kBool};
  const Shape shapes[] = {{2, 3}, {5}, {}, {0, 3}, {1, 2, 1, 2}};
  for (DType dt : dtypes) {
    for (const Shape& shape : shapes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(shape));
      Tensor t(dt, shape);
      auto* p = static_cast<uint8_t*>(t.mutable_data());
      for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dt == DType::kBool ? i % 2 : i * 29 + 3);
      const std::string path = d.path("t.npy");
      write_npy(path, t);
      const std::string raw = test::read_bytes(path);
      EXPECT_EQ(raw[6], 1);  // version 1.0
      EXPECT_EQ((10 + load_le(reinterpret_cast<const uint8_t*>(raw.data()) + 8, 2)) % 64, 0u);
      const Tensor r = read_npy(path);
      EXPECT_EQ(r.dtype(), dt);
      EXPECT_EQ(r.shape(), shape);
      ASSERT_EQ(r.nbytes(), t.nbytes());
      EXPECT_EQ(std::memcmp(r.data(), t.data(), t.nbytes()), 0);
    }
  }
  EXPECT_FALSE(std::filesystem::exists(d.path("t.npy.tmp")));
}

TEST(Npy, WritesTheHeaderNumpyWrites) {
  IoScratchDir d;
  write_npy(d.path("a.npy"), Tensor(DType::kF16, {7}));
  const std::string raw = test::read_bytes(d.path("a.npy"));
  const std::string dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (7,), }";
  EXPECT_EQ(raw.substr(10, dict.size()), dict);
  EXPECT_EQ(raw.size(), 128u + 14u);  // 10 + 57 header bytes pad to 128
  EXPECT_EQ(raw.substr(10 + dict.size(), 128 - 11 - dict.size()), std::string(128 - 11 - dict.size(), ' '));
  EXPECT_EQ(raw[127], '\n');
}

TEST(Npy, RefusesDTypesNumpyLacks) {
  IoScratchDir d;
  expect_error([&] { write_npy(d.path("b.npy"), Tensor(DType::kBF16, {2})); }, ErrorCode::kUnsupported,
               {"b.npy", "BF16"});
  expect_error([&] { write_npy(d.path("b.npy"), Tensor(DType::kF8E4M3, {2})); }, ErrorCode::kUnsupported,
               {"b.npy", "F8_E4M3"});
  expect_error([&] { write_npy(d.path("b.npy"), Tensor()); }, ErrorCode::kInvalidArgument, {"b.npy"});
  expect_error([&] { write_npy(d.path("missing_dir/b.npy"), Tensor(DType::kF32, {2})); }, ErrorCode::kIo,
               {"missing_dir/b.npy"});
}

TEST(Npy, ReadsFilesWrittenByNumpy) {
  Tensor t = read_npy(io_fixture("f32.npy"));
  ASSERT_EQ(t.dtype(), DType::kF32);
  ASSERT_EQ(t.shape(), (Shape{3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(t.data_as<float>()[i], (i - 5.5f) / 4);

  t = read_npy(io_fixture("f16.npy"));
  ASSERT_EQ(t.dtype(), DType::kF16);
  const float f16_want[] = {0.5f, -1.0f, 65504.0f, std::ldexp(1.0f, -24)};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(half_to_float(t.data_as<uint16_t>()[i]), f16_want[i]);

  t = read_npy(io_fixture("f64.npy"));
  EXPECT_EQ(values<double>(t), (std::vector<double>{1.0 / 3.0, -1e300}));

  t = read_npy(io_fixture("i64.npy"));
  ASSERT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(values<int64_t>(t), (std::vector<int64_t>{-(int64_t{1} << 62), 1, 2, int64_t{1} << 62}));
  EXPECT_EQ(values<int32_t>(read_npy(io_fixture("i32.npy"))), (std::vector<int32_t>{INT32_MIN, INT32_MAX, 5}));
  EXPECT_EQ(values<int16_t>(read_npy(io_fixture("i16.npy"))), (std::vector<int16_t>{-32768, 32767}));
  EXPECT_EQ(values<int8_t>(read_npy(io_fixture("i8.npy"))), (std::vector<int8_t>{-128, 127, 0}));
  EXPECT_EQ(values<uint8_t>(read_npy(io_fixture("u8.npy"))), (std::vector<uint8_t>{0, 200, 255}));
  t = read_npy(io_fixture("bool.npy"));
  EXPECT_EQ(t.dtype(), DType::kBool);
  EXPECT_EQ(values<uint8_t>(t), (std::vector<uint8_t>{1, 0, 1}));
}

TEST(Npy, SwapsBigEndianIntoNative) {
  Tensor t = read_npy(io_fixture("f32_big_endian.npy"));
  ASSERT_EQ(t.dtype(), DType::kF32);
  EXPECT_EQ(values<float>(t), (std::vector<float>{1.5f, -2.25f, 1e-3f}));
  t = read_npy(io_fixture("i64_big_endian.npy"));
  EXPECT_EQ(values<int64_t>(t), (std::vector<int64_t>{1, -2, (int64_t{1} << 40) + 3}));
}

TEST(Npy, ReadsScalarsEmptyArraysAndVersions2And3) {
  Tensor t = read_npy(io_fixture("scalar.npy"));
  EXPECT_EQ(t.shape(), Shape{});
  EXPECT_EQ(t.data_as<float>()[0], 2.5f);
  t = read_npy(io_fixture("empty.npy"));
  EXPECT_EQ(t.shape(), (Shape{0, 3}));
  for (const char* name : {"v2.npy", "v3.npy"}) {
    t = read_npy(io_fixture(name));
    EXPECT_EQ(t.dtype(), DType::kI32) << name;
    EXPECT_EQ(t.shape(), (Shape{1, 3})) << name;
    EXPECT_EQ(values<int32_t>(t), (std::vector<int32_t>{1, 2, 3})) << name;
  }
}

TEST(Npy, RefusesFortranOrder) {
  expect_error([] { read_npy(io_fixture("fortran.npy")); }, ErrorCode::kUnsupported,
               {"fortran.npy", "[2, 3]", "np.ascontiguousarray"});
}

TEST(Npy, AcceptsHeaderVariants) {
  IoScratchDir d;
  const std::string f32_2(reinterpret_cast<const char*>(std::array<float, 2>{1.0f, 2.0f}.data()), 8);
  struct Case { const char* label; std::string bytes; DType dtype; Shape shape; };
  const std::vector<Case> cases = {
      {"native '='", npy_bytes(npy_dict("=f4", "(2,)"), f32_2), DType::kF32, {2}},
      {"'|' on a float", npy_bytes(npy_dict("|f4", "(2,)"), f32_2), DType::kF32, {2}},
      {"'<' on a byte", npy_bytes(npy_dict("<u1", "(2, 4)"), std::string(8, 1)), DType::kU8, {2, 4}},
      {"python 2 longs", npy_bytes(npy_dict("<f4", "(1L, 2L)"), f32_2), DType::kF32, {1, 2}},
      {"key order, double quotes", npy_bytes(R"({"shape": (2,), "fortran_order": False, "descr": "<f4"})", f32_2),
       DType::kF32, {2}},
      {"fortran 1-d", npy_bytes(npy_dict("<f4", "(2,)", "True"), f32_2), DType::kF32, {2}},
      {"trailing data", npy_bytes(npy_dict("<f4", "(1,)"), f32_2), DType::kF32, {1}},
      {"version 2", npy_bytes(npy_dict("<f4", "(2,)"), f32_2, 2), DType::kF32, {2}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    test::write_bytes(d.path("v.npy"), c.bytes);
    Tensor t;
    ASSERT_NO_THROW(t = read_npy(d.path("v.npy")));
    EXPECT_EQ(t.dtype(), c.dtype);
    EXPECT_EQ(t.shape(), c.shape);
  }
}

TEST(Npy, RejectsEveryCorruption) {
  struct Case { const char* label; std::string bytes; ErrorCode code; std::vector<std::string> needles; };
  const std::vector<Case> cases = {
      {"short file", "\x93NUM", ErrorCode::kFormat, {"magic"}},
      {"bad magic", npy_bytes(npy_dict("<f4", "(1,)"), "abcd").replace(1, 1, "X"), ErrorCode::kFormat, {"magic"}},
      {"version 4", npy_bytes(npy_dict("<f4", "(1,)"), "abcd", 4), ErrorCode::kFormat, {"4.0"}},
      {"no header length", std::string("\x93NUMPY\x02\x00\x10", 9), ErrorCode::kFormat, {"9 bytes"}},
      {"header longer than file", npy_bytes(npy_dict("<f4", "(1,)"), "").substr(0, 30), ErrorCode::kFormat,
       {"exceeds", "30 bytes"}},
      {"absurd header", std::string("\x93NUMPY\x02\x00", 8) + test::le_bytes(0xffffffffu, 4), ErrorCode::kFormat,
       {"4294967295", "absurd"}},
      {"truncated data", npy_bytes(npy_dict("<f4", "(2, 3)"), std::string(20, 0)), ErrorCode::kFormat,
       {"20 bytes", "24 bytes", "[2, 3]"}},
      {"unknown descr", npy_bytes(npy_dict("<c8", "(1,)"), std::string(8, 0)), ErrorCode::kDTypeMismatch, {"<c8"}},
      {"unicode descr", npy_bytes(npy_dict("<U4", "(1,)"), std::string(16, 0)), ErrorCode::kDTypeMismatch, {"<U4"}},
      {"bad byte order", npy_bytes(npy_dict("!f4", "(1,)"), std::string(4, 0)), ErrorCode::kDTypeMismatch, {"!f4"}},
      {"structured", npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"),
       ErrorCode::kDTypeMismatch, {"structured"}},
      {"not a dict", npy_bytes("[1, 2]", ""), ErrorCode::kFormat, {"expected '{'"}},
      {"missing shape", npy_bytes("{'descr': '<f4', 'fortran_order': False}", ""), ErrorCode::kFormat, {"'shape'"}},
      {"missing descr", npy_bytes("{'shape': (), 'fortran_order': False}", ""), ErrorCode::kFormat, {"'descr'"}},
      {"missing fortran_order", npy_bytes("{'descr': '<f4', 'shape': ()}", "abcd"), ErrorCode::kFormat,
       {"'fortran_order'"}},
      {"shape not a tuple", npy_bytes(npy_dict("<f4", "3"), "abcd"), ErrorCode::kFormat, {"'shape'"}},
      {"negative dim", npy_bytes(npy_dict("<f4", "(2, -1)"), "abcd"), ErrorCode::kFormat, {"shape"}},
      {"fortran_order not a bool", npy_bytes(npy_dict("<f4", "(1,)", "1"), "abcd"), ErrorCode::kFormat,
       {"'fortran_order'"}},
      {"duplicate key", npy_bytes("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': ()}", "abcdefgh"),
       ErrorCode::kFormat, {"duplicate", "descr"}},
      {"junk after dict", npy_bytes(npy_dict("<f4", "(1,)") + " junk", "abcd"), ErrorCode::kFormat, {"after the dict"}},
      {"unterminated string", npy_bytes("{'descr", ""), ErrorCode::kFormat, {"unterminated"}},
      {"cut header", npy_bytes("{'descr': '<f4', ", ""), ErrorCode::kFormat, {"npy header"}},
      {"huge integer", npy_bytes(npy_dict("<f4", "(99999999999999999999,)"), ""), ErrorCode::kFormat, {"too large"}},
      {"numel overflow", npy_bytes(npy_dict("<f4", "(4294967296, 4294967296, 16)"), ""), ErrorCode::kFormat,
       {"overflow"}},
      {"deep nesting", npy_bytes(npy_dict("<f4", "((((((((1,),),),),),),),)"), ""), ErrorCode::kFormat, {"nests"}},
      {"bad token", npy_bytes("{'descr': @}", ""), ErrorCode::kFormat, {"\"@\""}},
  };
  IoScratchDir d;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    test::write_bytes(d.path("bad.npy"), c.bytes);
    auto needles = c.needles;
    needles.push_back("bad.npy");
    expect_error([&] { read_npy(d.path("bad.npy")); }, c.code, needles);
  }
  expect_error([&] { read_npy(d.path("none.npy")); }, ErrorCode::kNotFound, {"none.npy"});
}

TEST(Npy, RandomCorruptionsGiveOnlyLayoutrtErrors) {
  IoScratchDir d;
  Tensor t(DType::kI32, {2, 3});
  for (int i = 0; i < 6; ++i) t.mutable_data_as<int32_t>()[i] = i;
  write_npy(d.path("valid.npy"), t);
  std::string valid = test::read_bytes(d.path("valid.npy"));
  // Also mutate a big-endian version-2 file, which takes the byte-swap and 32-bit-length paths.
  std::string v2 = test::read_bytes(io_fixture("i64_big_endian.npy"));
  const auto load = [](const std::string& path) {
    const Tensor r = read_npy(path);
    volatile unsigned sum = 0;
    for (size_t i = 0; i < r.nbytes(); ++i) sum = sum + static_cast<const uint8_t*>(r.data())[i];
  };
  const auto [ok1, err1] = test::fuzz_file(valid, 64, d.path("fuzz.npy"), 1000, 99, load);
  const auto [ok2, err2] = test::fuzz_file(test::read_bytes(io_fixture("v2.npy")), 0x80, d.path("fuzz.npy"), 1000,
                                           7, load);
  EXPECT_GT(ok1 + ok2, 0);
  EXPECT_GT(err1 + err2, 500);
  std::cout << "[          ] npy mutations: " << ok1 + ok2 << " loaded, " << err1 + err2 << " rejected\n";
}

}  // namespace
}  // namespace layoutrt

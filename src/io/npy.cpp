#include "io/npy.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "io/atomic_file.h"
#include "io/format_util.h"
#include "io/mapped_file.h"

namespace layoutrt {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// NumPy itself refuses headers over 10000 bytes by default, and a plain array's header is under 1 KB; the limit
// bounds what a hostile header can make the parser allocate.
constexpr uint64_t kMaxHeaderBytes = 1 << 16;

struct NpyType { char kind; size_t size; DType dtype; };
constexpr NpyType kNpyTypes[] = {
    {'f', 4, DType::kF32}, {'f', 2, DType::kF16}, {'f', 8, DType::kF64}, {'i', 8, DType::kI64}, {'i', 4, DType::kI32},
    {'i', 2, DType::kI16}, {'i', 1, DType::kI8},  {'u', 1, DType::kU8},  {'b', 1, DType::kBool},
};

// The subset of Python literals that np.save writes into the header: a dict with string keys whose values are
// strings, True/False/None, integers (Python 2 files may write 3L) and tuples/lists of those.
struct PyValue {
  enum Kind { kStr, kInt, kBool, kNone, kSeq } kind = kNone;
  std::string str;
  int64_t num = 0;
  bool flag = false;
  std::vector<PyValue> items;
};

class PyLiteralParser {
 public:
  PyLiteralParser(const std::string& path, std::string_view text) : path_(path), s_(text) {}

  std::vector<std::pair<std::string, PyValue>> dict() {
    std::vector<std::pair<std::string, PyValue>> out;
    expect('{');
    while (!accept('}')) {
      PyValue key = value(0);
      require(key.kind == PyValue::kStr, ErrorCode::kFormat, path_, ": npy header: dict key at byte ", pos_,
              " is not a string");
      expect(':');
      for (const auto& kv : out)
        if (kv.first == key.str) throw_error(ErrorCode::kFormat, path_, ": npy header: duplicate key ", quote(key.str));
      out.emplace_back(key.str, value(0));
      if (!accept(',')) { expect('}'); break; }
    }
    skip_space();
    require(pos_ == s_.size(), ErrorCode::kFormat, path_, ": npy header: unexpected text after the dict at byte ",
            pos_);
    return out;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && std::string_view(" \t\r\n").find(s_[pos_]) != std::string_view::npos) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) { ++pos_; return true; }
    return false;
  }
  void expect(char c) {
    require(accept(c), ErrorCode::kFormat, path_, ": npy header: expected '", c, "' at byte ", pos_);
  }
  bool accept_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  PyValue value(int depth) {
    // Real headers nest at most a structured dtype's list of tuples; the cap keeps a hostile header off the stack.
    require(depth < 4, ErrorCode::kFormat, path_, ": npy header nests too deeply at byte ", pos_);
    skip_space();
    require(pos_ < s_.size(), ErrorCode::kFormat, path_, ": npy header ends early (", s_.size(), " bytes)");
    PyValue v;
    const char c = s_[pos_];
    if (c == '\'' || c == '"') {
      v.kind = PyValue::kStr;
      for (++pos_; pos_ < s_.size() && s_[pos_] != c; ++pos_) {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
        v.str += s_[pos_];
      }
      require(pos_ < s_.size(), ErrorCode::kFormat, path_, ": npy header: unterminated string");
      ++pos_;
    } else if (c == '(' || c == '[') {
      v.kind = PyValue::kSeq;
      const char close = c == '(' ? ')' : ']';
      ++pos_;
      while (!accept(close)) {
        v.items.push_back(value(depth + 1));
        if (!accept(',')) { expect(close); break; }
      }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::kInt;
      const bool neg = c == '-';
      if (neg) ++pos_;
      const size_t start = pos_;
      uint64_t mag = 0;
      for (; pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; ++pos_) {
        if (__builtin_mul_overflow(mag, 10u, &mag) || __builtin_add_overflow(mag, s_[pos_] - '0', &mag) ||
            mag > static_cast<uint64_t>(INT64_MAX))
          throw_error(ErrorCode::kFormat, path_, ": npy header: integer at byte ", start, " is too large");
      }
      require(pos_ > start, ErrorCode::kFormat, path_, ": npy header: expected digits at byte ", pos_);
      accept_word("L");
      v.num = neg ? -static_cast<int64_t>(mag) : static_cast<int64_t>(mag);
    } else if (accept_word("True")) {
      v.kind = PyValue::kBool;
      v.flag = true;
    } else if (accept_word("False")) {
      v.kind = PyValue::kBool;
    } else if (accept_word("None")) {
      v.kind = PyValue::kNone;
    } else {
      throw_error(ErrorCode::kFormat, path_, ": npy header: unexpected character ", quote(std::string(1, c)),
                  " at byte ", pos_);
    }
    return v;
  }

  const std::string& path_;
  std::string_view s_;
  size_t pos_ = 0;
};

const PyValue& field(const std::string& path, const std::vector<std::pair<std::string, PyValue>>& dict,
                     const char* key) {
  const auto it = std::find_if(dict.begin(), dict.end(), [&](const auto& kv) { return kv.first == key; });
  require(it != dict.end(), ErrorCode::kFormat, path, ": npy header lacks '", key, "'");
  return it->second;
}

void byteswap(uint8_t* p, size_t elem, size_t n) {
  for (size_t i = 0; i < n; ++i, p += elem) std::reverse(p, p + elem);
}

}  // namespace

Tensor read_npy(const std::string& path) {
  const auto file = MappedFile::open(path);
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  require(size >= kMagicLen + 2 && std::memcmp(p, kMagic, kMagicLen) == 0, ErrorCode::kFormat, path,
          ": not an npy file (no \\x93NUMPY magic)");
  const int major = p[6], minor = p[7];
  require((major == 1 || major == 2 || major == 3) && minor == 0, ErrorCode::kFormat, path, ": npy format version ",
          major, ".", minor, " is not supported (1.0, 2.0, 3.0)");
  const uint64_t len_bytes = major == 1 ? 2 : 4;
  require(size >= 8 + len_bytes, ErrorCode::kFormat, path, ": file is ", size, " bytes, too short for an npy header");
  const uint64_t header_len = load_le(p + 8, static_cast<int>(len_bytes));
  const uint64_t header_start = 8 + len_bytes;
  require(header_len <= kMaxHeaderBytes, ErrorCode::kFormat, path, ": npy header length ", header_len,
          " is absurd (limit ", kMaxHeaderBytes, ")");
  require(header_len <= size - header_start, ErrorCode::kFormat, path, ": npy header length ", header_len,
          " exceeds the ", size - header_start, " bytes after it (file is ", size, " bytes)");

  const std::string_view text(reinterpret_cast<const char*>(p) + header_start, header_len);
  const auto dict = PyLiteralParser(path, text).dict();

  const PyValue& descr_v = field(path, dict, "descr");
  require(descr_v.kind == PyValue::kStr, ErrorCode::kDTypeMismatch, path,
          ": structured npy dtypes are not supported (descr is not a string)");
  const std::string& descr = descr_v.str;
  const NpyType* type = nullptr;
  if (descr.size() == 3 && std::string_view("<>=|").find(descr[0]) != std::string_view::npos)
    for (const auto& t : kNpyTypes)
      if (descr[1] == t.kind && static_cast<size_t>(descr[2] - '0') == t.size) type = &t;
  if (!type)
    throw_error(ErrorCode::kDTypeMismatch, path, ": npy dtype ", quote(descr),
                " is not supported (<f4 <f2 <f8 <i8 <i4 <i2 |i1 |u1 |b1)");

  const PyValue& shape_v = field(path, dict, "shape");
  require(shape_v.kind == PyValue::kSeq, ErrorCode::kFormat, path, ": npy header: 'shape' is not a tuple");
  Shape shape;
  for (const PyValue& d : shape_v.items) {
    require(d.kind == PyValue::kInt && d.num >= 0, ErrorCode::kFormat, path,
            ": npy header: shape has an entry that is not a non-negative integer");
    shape.push_back(d.num);
  }
  const PyValue& fortran = field(path, dict, "fortran_order");
  require(fortran.kind == PyValue::kBool, ErrorCode::kFormat, path, ": npy header: 'fortran_order' is not a bool");
  // For rank <= 1 Fortran and C order are the same bytes.
  if (fortran.flag && shape.size() >= 2)
    throw_error(ErrorCode::kUnsupported, path, ": fortran_order arrays are not supported (shape ", shape_str(shape),
                "); save with np.save(path, np.ascontiguousarray(a))");

  const auto nbytes = checked_nbytes(shape, type->size);
  if (!nbytes) throw_error(ErrorCode::kFormat, path, ": npy shape ", shape_str(shape), " overflows");
  const uint64_t data_start = header_start + header_len;
  if (*nbytes > size - data_start)
    throw_error(ErrorCode::kFormat, path, ": data is ", size - data_start, " bytes but ", quote(descr), " ",
                shape_str(shape), " needs ", *nbytes, " bytes");

  Tensor t(type->dtype, shape);
  auto* dst = static_cast<uint8_t*>(t.mutable_data());
  std::memcpy(dst, p + data_start, *nbytes);
  if (descr[0] == '>') byteswap(dst, type->size, *nbytes / type->size);
  return t;
}

void write_npy(const std::string& path, const Tensor& t) {
  require(t.defined(), ErrorCode::kInvalidArgument, path, ": cannot write an undefined tensor");
  const auto* type = std::find_if(std::begin(kNpyTypes), std::end(kNpyTypes),
                                  [&](const NpyType& n) { return n.dtype == t.dtype(); });
  if (type == std::end(kNpyTypes))
    throw_error(ErrorCode::kUnsupported, path, ": NumPy has no ", dtype_name(t.dtype()),
                " dtype; convert first, e.g. tensor.to(DType::kF32)");

  std::string header = std::string("{'descr': '") + (type->size == 1 ? '|' : '<') + type->kind +
                       std::to_string(type->size) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape().size(); ++i) header += (i ? ", " : "") + std::to_string(t.shape()[i]);
  header += t.shape().size() == 1 ? ",), }" : "), }";
  // Pad so the data starts at a multiple of 64 bytes, as NumPy does (10 bytes of magic, version and length precede).
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  require(header.size() <= 0xffff, ErrorCode::kUnsupported, path, ": rank ", t.rank(),
          " is too large for an npy 1.0 header");

  uint8_t prefix[10];
  std::memcpy(prefix, kMagic, kMagicLen);
  prefix[6] = 1;
  prefix[7] = 0;
  store_le(prefix + 8, header.size(), 2);
  AtomicFileWriter out(path);
  out.write(prefix, sizeof(prefix));
  out.write(header.data(), header.size());
  out.write(t.data(), t.nbytes());
  out.commit();
}

}  // namespace layoutrt

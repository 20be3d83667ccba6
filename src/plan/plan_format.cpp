#include "plan/plan_format.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/hash.h"
#include "io/mapped_file.h"
#include "layoutrt/error.h"

namespace layoutrt {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put_u32(std::string& s, uint32_t v) { for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i))); }
void put_u64(std::string& s, uint64_t v) { for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i))); }
uint64_t get_u64(const uint8_t* p) { uint64_t v = 0; for (int i = 7; i >= 0; --i) v = (v << 8) | p[i]; return v; }
uint32_t get_u32(const uint8_t* p) { uint32_t v = 0; for (int i = 3; i >= 0; --i) v = (v << 8) | p[i]; return v; }

// Streams bytes to the file while hashing them.
class HashingWriter {
 public:
  explicit HashingWriter(const std::string& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) throw_error(ErrorCode::kIo, path, ": cannot open for writing");
  }
  void write(const void* p, size_t n) {
    hash_.update(p, n);
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    if (!out_) throw_error(ErrorCode::kIo, path_, ": write failed (disk full?)");
    written_ += n;
  }
  void pad_to(uint64_t offset) {
    static const char zeros[kPlanAlignment] = {};
    while (written_ < offset) write(zeros, std::min<uint64_t>(offset - written_, sizeof zeros));
  }
  void finish() {
    uint64_t h = hash_.digest();
    std::string t;
    put_u64(t, h);
    out_.write(t.data(), 8);
    out_.close();
    if (!out_) throw_error(ErrorCode::kIo, path_, ": write failed (disk full?)");
  }
  uint64_t written() const { return written_; }

 private:
  std::string path_;
  std::ofstream out_;
  Xxh64 hash_;
  uint64_t written_ = 0;
};

}  // namespace

void write_plan(const std::string& path, nlohmann::json header,
                const std::vector<std::pair<std::string, Tensor>>& tensors, const ProgressFn& progress) {
  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0, total_data = 0;
  for (const auto& [name, t] : tensors) {
    offset = align_up(offset, kPlanAlignment);
    table.push_back({{"name", name}, {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"offset", offset},
                     {"bytes", t.nbytes()}});
    offset += t.nbytes();
    total_data += t.nbytes();
  }
  header["tensors"] = table;
  const std::string json = header.dump();
  const uint64_t data_offset = align_up(kPlanFixedHeaderBytes + json.size(), kPlanAlignment);
  const uint64_t total = data_offset + align_up(offset, 8) + 8;

  std::string fixed(kPlanMagic, 8);
  put_u32(fixed, kPlanFormatVersion);
  put_u32(fixed, 0);
  put_u64(fixed, json.size());
  put_u64(fixed, data_offset);
  put_u64(fixed, total);

  const std::string tmp = path + ".tmp";
  {
    HashingWriter w(tmp);
    w.write(fixed.data(), fixed.size());
    w.write(json.data(), json.size());
    uint64_t done = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      w.pad_to(data_offset + table[i]["offset"].get<uint64_t>());
      const Tensor& t = tensors[i].second;
      w.write(t.data(), t.nbytes());
      done += t.nbytes();
      if (progress) progress("writing plan", static_cast<int64_t>(done), static_cast<int64_t>(total_data));
    }
    w.pad_to(total - 8);
    w.finish();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw_error(ErrorCode::kIo, path, ": cannot move ", tmp, " into place: ", ec.message());
}

PlanFile PlanFile::open(const std::string& path, bool verify_checksum) {
  PlanFile p;
  p.path_ = path;
  p.file_ = MappedFile::open(path);
  const uint8_t* d = p.file_->data();
  const uint64_t size = p.file_->size();
  if (size < kPlanFixedHeaderBytes + 8 || std::memcmp(d, kPlanMagic, 8) != 0)
    throw_error(ErrorCode::kFormat, path, ": not a layoutrt plan (bad magic; build one with `layoutrt build`)");
  const uint32_t version = get_u32(d + 8);
  if (version > kPlanFormatVersion)
    throw_error(ErrorCode::kVersion, path, ": plan format version ", version, " is newer than this layoutrt ", LAYOUTRT_VERSION,
                " reads (up to ", kPlanFormatVersion, "); rebuild the plan or upgrade layoutrt");
  if (version == 0) throw_error(ErrorCode::kFormat, path, ": plan format version 0 is invalid");
  const uint64_t header_bytes = get_u64(d + 16), data_offset = get_u64(d + 24), total = get_u64(d + 32);
  if (total != size)
    throw_error(ErrorCode::kFormat, path, ": plan is ", size, " bytes but its header says ", total,
                size < total ? " (truncated)" : " (trailing bytes)");
  if (header_bytes > size || kPlanFixedHeaderBytes + header_bytes > data_offset || data_offset > size - 8 ||
      data_offset % kPlanAlignment != 0)
    throw_error(ErrorCode::kFormat, path, ": corrupt plan layout (header ", header_bytes, " bytes, data at ",
                data_offset, ", file ", size, " bytes)");
  if (verify_checksum) {
    const uint64_t want = get_u64(d + size - 8);
    const uint64_t got = xxh64(d, size - 8);
    if (want != got)
      throw_error(ErrorCode::kChecksum, path, ": checksum mismatch (stored ", std::hex, want, ", computed ", got,
                  "): the plan is corrupt; rebuild it");
  }
  try {
    p.header_ = nlohmann::json::parse(d + kPlanFixedHeaderBytes, d + kPlanFixedHeaderBytes + header_bytes);
  } catch (const std::exception& e) {
    throw_error(ErrorCode::kFormat, path, ": plan header is not valid JSON (", e.what(), ")");
  }
  p.data_offset_ = data_offset;
  const uint64_t data_bytes = size - 8 - data_offset;
  try {
    for (const auto& e : p.header_.at("tensors")) {
      PlanTensor t;
      t.name = e.at("name").get<std::string>();
      auto dt = dtype_from_name(e.at("dtype").get<std::string>());
      if (!dt) throw_error(ErrorCode::kFormat, path, ": tensor ", t.name, " has unknown dtype ", e.at("dtype").dump());
      t.dtype = *dt;
      t.shape = e.at("shape").get<Shape>();
      t.offset = e.at("offset").get<uint64_t>();
      t.nbytes = e.at("bytes").get<uint64_t>();
      int64_t numel = 1;
      for (int64_t s : t.shape) {
        if (s < 0 || (s > 0 && numel > (int64_t{1} << 40) / s))
          throw_error(ErrorCode::kFormat, path, ": tensor ", t.name, " has an invalid shape ", shape_str(t.shape));
        numel *= s;
      }
      if (static_cast<uint64_t>(numel) * dtype_size(t.dtype) != t.nbytes || t.offset > data_bytes ||
          t.nbytes > data_bytes - t.offset || t.offset % kPlanAlignment != 0)
        throw_error(ErrorCode::kFormat, path, ": tensor ", t.name, " (", dtype_name(t.dtype), " ",
                    shape_str(t.shape), ", ", t.nbytes, " bytes at ", t.offset, ") does not fit the data section of ",
                    data_bytes, " bytes");
      p.tensors_.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCode::kFormat, path, ": plan tensor table is malformed (", e.what(), ")");
  }
  return p;
}

const PlanTensor* PlanFile::find(const std::string& name) const {
  for (const auto& t : tensors_) if (t.name == name) return &t;
  return nullptr;
}

Tensor PlanFile::tensor(const std::string& name) const {
  const PlanTensor* t = find(name);
  if (!t) throw_error(ErrorCode::kMissingTensor, path_, ": plan has no tensor ", name);
  return Tensor(t->dtype, t->shape, std::static_pointer_cast<const void>(file_),
                file_->data() + data_offset_ + t->offset);
}

uint64_t PlanFile::file_bytes() const { return file_->size(); }

}  // namespace layoutrt

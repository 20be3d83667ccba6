#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <tuple>

#include "io/format_util.h"

namespace layoutrt {

using json = nlohmann::json;

namespace {

// The official library's limit; a real header is a few hundred KB even for the largest models.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// A JSON array of non-negative integers (shape, data_offsets); the message names the tensor, field and index.
std::vector<uint64_t> read_uints(const std::string& path, const std::string& name, const json& entry,
                                 const char* field) {
  const auto it = entry.find(field);
  require(it != entry.end(), ErrorCode::kFormat, path, ": tensor ", quote(name), ": missing \"", field, "\"");
  require(it->is_array(), ErrorCode::kFormat, path, ": tensor ", quote(name), ": \"", field, "\" is a ",
          it->type_name(), ", expected an array of integers");
  std::vector<uint64_t> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_number_unsigned())  // nlohmann types non-negative integers as unsigned, negative ones as integer
      throw_error(ErrorCode::kFormat, path, ": tensor ", quote(name), ": ", field, "[", i, "] is ", v.dump(),
                  ", expected a non-negative integer");
    out.push_back(v.get<uint64_t>());
  }
  return out;
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t buffer) {
  require(v.is_object(), ErrorCode::kFormat, path, ": tensor ", quote(name), ": entry is a ", v.type_name(),
          ", expected an object");
  SafetensorsEntry e;
  e.name = name;

  const auto dt = v.find("dtype");
  require(dt != v.end() && dt->is_string(), ErrorCode::kFormat, path, ": tensor ", quote(name),
          ": \"dtype\" is missing or not a string");
  const auto dtype = dtype_from_name(dt->get_ref<const std::string&>());
  if (!dtype)
    throw_error(ErrorCode::kDTypeMismatch, path, ": tensor ", quote(name), ": unsupported dtype ", dt->dump());
  e.dtype = *dtype;

  for (uint64_t d : read_uints(path, name, v, "shape")) {
    require(d <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ErrorCode::kFormat, path, ": tensor ",
            quote(name), ": dim ", d, " is too large");
    e.shape.push_back(static_cast<int64_t>(d));
  }
  const auto nbytes = checked_nbytes(e.shape, dtype_size(e.dtype));
  if (!nbytes)
    throw_error(ErrorCode::kFormat, path, ": tensor ", quote(name), ": shape ", shape_str(e.shape),
                " overflows (numel x ", dtype_size(e.dtype), " bytes does not fit in 64 bits)");

  const auto off = read_uints(path, name, v, "data_offsets");
  require(off.size() == 2, ErrorCode::kFormat, path, ": tensor ", quote(name), ": \"data_offsets\" has ", off.size(),
          " values, expected [begin, end]");
  e.data_begin = off[0];
  e.data_end = off[1];
  require(e.data_begin <= e.data_end, ErrorCode::kFormat, path, ": tensor ", quote(name), ": data_offsets [",
          e.data_begin, ", ", e.data_end, "] begin > end");
  require(e.data_end <= buffer, ErrorCode::kFormat, path, ": tensor ", quote(name), ": data_offsets [", e.data_begin,
          ", ", e.data_end, "] end beyond the data buffer (", buffer, " bytes)");
  if (e.data_end - e.data_begin != *nbytes)
    throw_error(ErrorCode::kFormat, path, ": tensor ", quote(name), ": ", dtype_name(e.dtype), " ",
                shape_str(e.shape), " needs ", *nbytes, " bytes but data_offsets [", e.data_begin, ", ", e.data_end,
                "] hold ", e.data_end - e.data_begin);
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& v) {
  require(v.is_object(), ErrorCode::kFormat, path, ": \"__metadata__\" is a ", v.type_name(),
          ", expected an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      throw_error(ErrorCode::kFormat, path, ": \"__metadata__\" value of ", quote(key), " is a ", value.type_name(),
                  ", expected a string");
    out[key] = value.get<std::string>();
  }
  return out;
}

// The tensors must tile the data buffer exactly, as the official library requires: an overlap means two tensors
// alias each other's bytes, and a hole means the header and the data disagree (e.g. a tensor dropped from the header).
void check_layout(const std::string& path, const std::vector<SafetensorsEntry>& entries, uint64_t buffer) {
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return std::tie(a->data_begin, a->data_end) < std::tie(b->data_begin, b->data_end);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry* e : by_offset) {
    if (e->data_begin < covered)
      throw_error(ErrorCode::kFormat, path, ": tensor ", quote(e->name), " [", e->data_begin, ", ", e->data_end,
                  ") overlaps tensor ", quote(prev->name), " [", prev->data_begin, ", ", prev->data_end, ")");
    if (e->data_begin > covered)
      throw_error(ErrorCode::kFormat, path, ": data buffer bytes [", covered, ", ", e->data_begin,
                  ") belong to no tensor (hole before tensor ", quote(e->name), ")");
    covered = e->data_end;
    prev = e;
  }
  require(covered == buffer, ErrorCode::kFormat, path, ": data buffer bytes [", covered, ", ", buffer,
          ") belong to no tensor (trailing bytes after the last tensor)");
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const uint64_t size = f.file_->size();
  require(size >= 8, ErrorCode::kFormat, path, ": file is ", size,
          " bytes, too short for a safetensors file (8-byte header length first)");
  const uint64_t n = load_le(f.file_->data(), 8);
  require(n <= kMaxHeaderBytes, ErrorCode::kFormat, path, ": header length ", n, " is absurd (limit ",
          kMaxHeaderBytes, " bytes); not a safetensors file?");
  require(n <= size - 8, ErrorCode::kFormat, path, ": header length ", n, " exceeds the ", size - 8,
          " bytes after the length field (file is ", size, " bytes)");
  f.data_start_ = 8 + n;
  const uint64_t buffer = size - f.data_start_;

  const char* text = reinterpret_cast<const char*>(f.file_->data()) + 8;
  // Depth 3: top-level object > tensor entry > shape / data_offsets list.
  const json header = parse_json_strict(path, "header", text, text + n, 3);
  require(header.is_object(), ErrorCode::kFormat, path, ": header is a JSON ", header.type_name(),
          ", expected an object");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      f.metadata_ = parse_metadata(path, value);
    else
      f.entries_.push_back(parse_entry(path, name, value, buffer));
  }
  check_layout(path, f.entries_, buffer);
  std::sort(f.entries_.begin(), f.entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  const auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                                   [](const SafetensorsEntry& e, const std::string& n) { return e.name < n; });
  return it != entries_.end() && it->name == name ? &*it : nullptr;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) throw_error(ErrorCode::kMissingTensor, path(), ": no tensor ", quote(name));
  const uint8_t* p = file_->data() + data_start_ + e->data_begin;
  // The format only pads the header to 8 bytes by convention; a header of another length leaves the data unaligned,
  // and typed loads from it would be undefined behaviour.
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e->dtype) != 0) {
    Tensor copy(e->dtype, e->shape);
    std::memcpy(copy.mutable_data(), p, e->data_end - e->data_begin);
    return copy;
  }
  return Tensor(e->dtype, e->shape, std::shared_ptr<const void>(file_, p), p);
}

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  require(fs::exists(dir, ec), ErrorCode::kNotFound, dir, ": no such checkpoint directory");
  require(fs::is_directory(dir, ec), ErrorCode::kInvalidArgument, dir, ": is not a directory (expected a checkpoint "
          "directory holding model.safetensors or model.safetensors.index.json)");

  SafetensorsCheckpoint ck;
  ck.dir_ = dir;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single, ec)) {
    ck.shards_.push_back(SafetensorsFile::open(single.string()));
    for (const auto& e : ck.shards_[0].entries()) ck.shard_index_[e.name] = 0;
    return ck;
  }
  require(fs::exists(index_path, ec), ErrorCode::kNotFound, dir,
          ": no model.safetensors or model.safetensors.index.json");

  const std::string ipath = index_path.string();
  const auto index_file = MappedFile::open(ipath);
  const char* text = reinterpret_cast<const char*>(index_file->data());
  // Depth 3: top-level object > weight_map / metadata > values.
  const json index = parse_json_strict(ipath, "index", text, text + index_file->size(), 3);
  require(index.is_object(), ErrorCode::kFormat, ipath, ": is a JSON ", index.type_name(), ", expected an object");
  const auto wm = index.find("weight_map");
  require(wm != index.end(), ErrorCode::kFormat, ipath, ": missing \"weight_map\"");
  require(wm->is_object(), ErrorCode::kFormat, ipath, ": \"weight_map\" is a ", wm->type_name(),
          ", expected an object");

  std::map<std::string, size_t> shard_ids;  // shard file name -> index into shards_
  for (const auto& [name, file] : wm->items()) {
    if (!file.is_string())
      throw_error(ErrorCode::kFormat, ipath, ": weight_map entry of tensor ", quote(name), " is a ", file.type_name(),
                  ", expected a shard file name");
    const auto& shard = file.get_ref<const std::string&>();
    // Shards live next to the index; a path would let a downloaded index point anywhere on disk.
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
      throw_error(ErrorCode::kFormat, ipath, ": weight_map entry of tensor ", quote(name), " names shard ",
                  quote(shard), ", expected a file name in the same directory");
    if (shard_ids.count(shard)) continue;
    const std::string spath = (fs::path(dir) / shard).string();
    require(fs::exists(spath, ec), ErrorCode::kNotFound, ipath, ": shard ", quote(shard), " (listed for tensor ",
            quote(name), ") does not exist: ", spath);
    shard_ids[shard] = ck.shards_.size();
    ck.shards_.push_back(SafetensorsFile::open(spath));
  }

  for (size_t i = 0; i < ck.shards_.size(); ++i) {
    for (const auto& e : ck.shards_[i].entries()) {
      const auto [it, inserted] = ck.shard_index_.emplace(e.name, i);
      if (!inserted)
        throw_error(ErrorCode::kFormat, dir, ": tensor ", quote(e.name), " is in two shards: ",
                    ck.shards_[it->second].path(), " and ", ck.shards_[i].path());
    }
  }
  for (const auto& [name, file] : wm->items()) {
    const size_t listed = shard_ids.at(file.get<std::string>());
    const auto it = ck.shard_index_.find(name);
    if (it == ck.shard_index_.end())
      throw_error(ErrorCode::kFormat, ipath, ": tensor ", quote(name), " is listed in shard ",
                  ck.shards_[listed].path(), " but that shard does not hold it");
    if (it->second != listed)
      throw_error(ErrorCode::kFormat, ipath, ": tensor ", quote(name), " is listed in shard ",
                  ck.shards_[listed].path(), " but is found in ", ck.shards_[it->second].path());
  }
  return ck;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : shard_index_) out.push_back(kv.first);
  return out;
}

const SafetensorsFile* SafetensorsCheckpoint::shard_of(const std::string& name) const {
  const auto it = shard_index_.find(name);
  return it == shard_index_.end() ? nullptr : &shards_[it->second];
}

const SafetensorsEntry* SafetensorsCheckpoint::find(const std::string& name) const {
  const SafetensorsFile* f = shard_of(name);
  return f ? f->find(name) : nullptr;
}

Tensor SafetensorsCheckpoint::tensor(const std::string& name) const {
  const SafetensorsFile* f = shard_of(name);
  if (!f) throw_error(ErrorCode::kMissingTensor, dir_, ": checkpoint has no tensor ", quote(name));
  return f->tensor(name);
}

std::string SafetensorsCheckpoint::file_of(const std::string& name) const {
  const SafetensorsFile* f = shard_of(name);
  if (!f) throw_error(ErrorCode::kMissingTensor, dir_, ": checkpoint has no tensor ", quote(name));
  return f->path();
}

}  // namespace layoutrt

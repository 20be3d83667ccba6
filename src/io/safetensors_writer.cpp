#include "io/safetensors_writer.h"

#include "io/atomic_file.h"
#include "io/format_util.h"

namespace layoutrt {

using json = nlohmann::json;

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw_error(ErrorCode::kInvalidArgument, path, ": tensor ", quote(name), " is undefined");
    if (name == "__metadata__" || header.contains(name))
      throw_error(ErrorCode::kInvalidArgument, path, ": tensor name ", quote(name), " is ",
                  name == "__metadata__" ? "reserved" : "used twice");
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", json::array({offset, offset + t.nbytes()})}};
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    throw_error(ErrorCode::kInvalidArgument, path, ": a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len[8];
  store_le(len, text.size(), 8);
  AtomicFileWriter out(path);
  out.write(len, sizeof(len));
  out.write(text.data(), text.size());
  for (const auto& kv : tensors) out.write(kv.second.data(), kv.second.nbytes());
  out.commit();
}

}  // namespace layoutrt

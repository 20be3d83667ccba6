#include "io/model_io.h"

#include <filesystem>

#include "io/npy.h"
#include "io/safetensors_writer.h"
#include "model/safetensors.h"

namespace layoutrt {

namespace fs = std::filesystem;

namespace {
struct Slot { const char* name; Tensor Inputs::*member; };
constexpr Slot kSlots[] = {{"input_ids", &Inputs::input_ids},
                           {"bbox", &Inputs::bbox},
                           {"attention_mask", &Inputs::attention_mask},
                           {"token_type_ids", &Inputs::token_type_ids},
                           {"pixel_values", &Inputs::pixel_values}};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

Inputs load_inputs(const std::string& path, std::vector<std::string>* ignored) {
  Inputs in;
  if (fs::is_directory(path)) {
    bool any = false;
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.path().extension() != ".npy") continue;
      const std::string stem = entry.path().stem().string();
      bool known = false;
      for (const Slot& s : kSlots)
        if (stem == s.name) {
          in.*(s.member) = read_npy(entry.path().string());
          known = any = true;
        }
      if (!known && ignored) ignored->push_back(entry.path().filename().string());
    }
    if (!any)
      throw_error(ErrorCode::kNotFound, path, ": no input .npy files (expected input_ids.npy, bbox.npy, ",
                  "attention_mask.npy, pixel_values.npy)");
    return in;
  }
  if (!fs::exists(path)) throw_error(ErrorCode::kNotFound, path, ": inputs not found");
  if (!ends_with(path, ".safetensors"))
    throw_error(ErrorCode::kInvalidArgument, path, ": inputs must be a directory of .npy files or a .safetensors file");
  SafetensorsFile f = SafetensorsFile::open(path);
  for (const auto& e : f.entries()) {
    bool known = false;
    for (const Slot& s : kSlots)
      if (e.name == s.name) {
        in.*(s.member) = f.tensor(e.name).clone();
        known = true;
      }
    if (!known && ignored) ignored->push_back(e.name);
  }
  return in;
}

void save_inputs(const std::string& path, const Inputs& in) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const Slot& s : kSlots)
    if ((in.*(s.member)).defined()) tensors.emplace_back(s.name, in.*(s.member));
  if (ends_with(path, ".safetensors")) {
    write_safetensors(path, tensors);
    return;
  }
  fs::create_directories(path);
  for (const auto& [name, t] : tensors) write_npy((fs::path(path) / (name + ".npy")).string(), t);
}

void save_outputs(const std::string& path, const Outputs& out, const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> tensors(out.tensors.begin(), out.tensors.end());
  if (ends_with(path, ".safetensors")) {
    write_safetensors(path, tensors, metadata);
    return;
  }
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw_error(ErrorCode::kIo, path, ": cannot create the output directory: ", ec.message());
  for (const auto& [name, t] : tensors) write_npy((fs::path(path) / (name + ".npy")).string(), t);
}

}  // namespace layoutrt

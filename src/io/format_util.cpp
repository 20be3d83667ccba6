#include "io/format_util.h"

#include <limits>
#include <set>
#include <vector>

namespace layoutrt {

using json = nlohmann::json;

std::string quote(const std::string& name) {
  return json(name).dump(-1, ' ', false, json::error_handler_t::replace);
}

uint64_t load_le(const uint8_t* p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_le(uint8_t* p, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i, v >>= 8) p[i] = static_cast<uint8_t>(v & 0xff);
}

std::optional<uint64_t> checked_nbytes(const Shape& shape, size_t elem_size) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return n;
}

json parse_json_strict(const std::string& path, const char* what, const char* begin, const char* end,
                       int max_depth) {
  // keys[d] holds the keys seen so far in the open object whose keys arrive at callback depth d.
  std::vector<std::set<std::string>> keys;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    require(depth <= max_depth, ErrorCode::kFormat, path, ": ", what, " nests deeper than ", max_depth,
            " levels");
    if (event == json::parse_event_t::object_start) {
      if (keys.size() < static_cast<size_t>(depth) + 2) keys.resize(depth + 2);
      keys[depth + 1].clear();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys[depth].insert(key).second)
        throw_error(ErrorCode::kFormat, path, ": ", what, " has duplicate key ", quote(key));
    }
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::parse_error& e) {
    throw_error(ErrorCode::kFormat, path, ": ", what, " is not valid JSON (error at byte ", e.byte, " of ",
                end - begin, ")");
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    throw_error(ErrorCode::kFormat, path, ": ", what, " is not valid JSON: ", e.what());
  }
}

}  // namespace layoutrt

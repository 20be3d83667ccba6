// Small helpers shared by the file-format readers and writers (safetensors, npy, checkpoint index).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "layoutrt/error.h"
#include "layoutrt/tensor.h"

namespace layoutrt {

// The formats are little-endian on disk and the engine maps them in place, which needs a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "layoutrt assumes a little-endian host");

// The one validation primitive: throws `code` with the concatenated message unless `ok`. The arguments are evaluated
// on every call, so checks in loops whose message needs computed text use `if (...) throw_error(...)` instead.
template <class... Args>
void require(bool ok, ErrorCode code, const Args&... args) {
  if (!ok) throw_error(code, args...);
}

// A name from a file, JSON-quoted ("a.b", control characters escaped) so that error messages stay on one line.
std::string quote(const std::string& name);

uint64_t load_le(const uint8_t* p, int nbytes);
void store_le(uint8_t* p, uint64_t v, int nbytes);

// numel(shape) * elem_size, or nullopt when a dim is negative or the product does not fit in int64.
std::optional<uint64_t> checked_nbytes(const Shape& shape, size_t elem_size);

// Parses JSON text from a file, rejecting (kFormat, naming `path`) invalid JSON, nesting deeper than `max_depth`
// (bounds the work a hostile file can cause) and duplicate keys in any object (nlohmann would silently keep the last,
// hiding e.g. a tensor listed twice).
nlohmann::json parse_json_strict(const std::string& path, const char* what, const char* begin, const char* end,
                                 int max_depth);

}  // namespace layoutrt

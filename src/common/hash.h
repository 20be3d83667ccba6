// XXH64 (Yann Collet's xxHash, 64-bit variant), written from the published algorithm description. Used as the plan
// file checksum: fast enough (several GB/s) to verify a 500 MB plan on every load.
#pragma once

#include <cstddef>
#include <cstdint>

namespace layoutrt {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t bytes);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t buf_len_ = 0;
};

uint64_t xxh64(const void* data, size_t bytes, uint64_t seed = 0);

}  // namespace layoutrt

// Hopper flash attention on warpgroup MMAs (wgmma, sm_90a; src/cuda_sm90/flash_attention_wgmma.cu), called by
// flash_attention.cu for the bias-cache path (bias mode 3) at head_dim 64 on compute capability 9.0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace layoutrt::cuda {
namespace flash {
struct FlashParams;
}

// Whether this build has the wgmma kernel (sm_90a objects are built with the CUTLASS units; see CMakeLists.txt).
bool sm90_flash_built();
// Dynamic shared memory of one CTA (bytes, including the 1024-byte alignment slack of the swizzled tiles) with
// `split` warpgroups (1 or 2) per 64 query rows.
size_t sm90_flash_smem_bytes(int split);
// Launches the kernel on grid (⌈max_seq_len / 64⌉, heads, sequences) for bias mode 3, head_dim 64, F16 (bf16 =
// false) or BF16 activations, with split = 1 or 2 warpgroups sharing each CTA's key tiles (split-KV inside the CTA,
// for small grids). The caller checked the arguments (flash_attention.cu's unsupported_reason) and the device
// (compute capability 9.0). Throws (LRT_CUDA) when the launch fails.
void sm90_flash_attention(const flash::FlashParams& p, dim3 grid, bool bf16, int split, cudaStream_t stream);

}  // namespace layoutrt::cuda

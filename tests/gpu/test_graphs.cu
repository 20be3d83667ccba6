// src/cuda/graphs.cu launch_programmatic_dependents_early: a kernel launched with programmatic stream serialization
// behind a kernel that never triggers (as cuBLASLt's GEMMs) is captured on a programmatic edge; the rewrite moves that
// edge to the upstream's launch-completion port. What must hold on the GPU: the downstream still sees every write of
// the upstream after its griddepcontrol.wait (the upstream here writes late: each block spins first), with one block
// and with more blocks than fit on the GPU at once; and it did launch before the upstream finished (the point of it).
// Only edges into kernels of the given name move.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "cuda/device_info.h"
#include "cuda/graphs.h"
#include "cuda/pdl.cuh"

namespace layoutrt::test {
namespace {

__device__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Spins `spin_ns`, then writes value + block index into out[block], and its finish time (max over blocks).
__global__ void late_writer(int* out, int value, unsigned long long spin_ns, unsigned long long* finished) {
  const unsigned long long t0 = global_ns();
  while (global_ns() - t0 < spin_ns) {
  }
  if (threadIdx.x == 0) {
    out[blockIdx.x] = value + static_cast<int>(blockIdx.x);
    __threadfence();
    atomicMax(finished, global_ns());
  }
}

// Records its start (min over blocks) before waiting, then copies in[] to out[] after griddepcontrol.wait.
__global__ void waiting_reader(const int* in, int* out, int n, unsigned long long* started) {
  if (threadIdx.x == 0) atomicMin(started, global_ns());
  cuda::pdl_wait();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = in[i];
}

TEST(CudaGraphs, EarlyProgrammaticEdgesStillWaitForTheUpstream) {
  int devices = 0;
  ASSERT_TRUE(cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) << "this test needs a CUDA device";
  if (!cuda::pdl_enabled()) GTEST_SKIP() << "PDL needs compute capability 9.0 or later (and LAYOUTRT_PDL not 0)";
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (const int blocks : {1, 40 * sms}) {  // one block; more than fit at once (1024 threads each: two per SM)
    SCOPED_TRACE(blocks);
    int *a = nullptr, *b = nullptr;
    unsigned long long* times = nullptr;  // [0] upstream finished, [1] downstream started
    ASSERT_EQ(cudaMalloc(&a, blocks * sizeof(int)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&b, blocks * sizeof(int)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&times, 2 * sizeof(unsigned long long)), cudaSuccess);
    const unsigned long long spin_ns = blocks == 1 ? 200000 : 20000;

    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    late_writer<<<blocks, 1024, 0, stream>>>(a, 1000, spin_ns, times);
    ASSERT_EQ(cuda::launch_kernel(waiting_reader, dim3(sms), dim3(256), 0, stream, a, b, blocks, times + 1),
              cudaSuccess);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    EXPECT_EQ(cuda::launch_programmatic_dependents_early(graph, "layer_norm"), 0) << "the reader is not a LayerNorm";
    EXPECT_EQ(cuda::launch_programmatic_dependents_early(graph, "layer_norm|flash_wgmma_inline||visual_rows"), 0)
        << "no part of the list names the reader";
    EXPECT_EQ(cuda::launch_programmatic_dependents_early(graph, "layer_norm|waiting_reader"), 1)
        << "one programmatic edge, writer → reader, named by the list's second part";
    size_t n = 0;
    ASSERT_EQ(cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &n), cudaSuccess);
    ASSERT_EQ(n, 1u);
    cudaGraphNode_t from, to;
    cudaGraphEdgeData data;
    ASSERT_EQ(cudaGraphGetEdges(graph, &from, &to, &data, &n), cudaSuccess);
    EXPECT_EQ(data.type, cudaGraphDependencyTypeProgrammatic);
    EXPECT_EQ(data.from_port, cudaGraphKernelNodePortLaunchCompletion);
    EXPECT_EQ(cuda::launch_programmatic_dependents_early(graph), 0) << "nothing left to move";
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

    for (int run = 0; run < 3; ++run) {
      SCOPED_TRACE(run);
      const unsigned long long init[2] = {0ull, ~0ull};
      ASSERT_EQ(cudaMemset(a, 0, blocks * sizeof(int)), cudaSuccess);
      ASSERT_EQ(cudaMemset(b, 0xFF, blocks * sizeof(int)), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(times, init, sizeof(init), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      std::vector<int> got(blocks);
      unsigned long long t[2];
      ASSERT_EQ(cudaMemcpy(got.data(), b, blocks * sizeof(int), cudaMemcpyDeviceToHost), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(t, times, sizeof(t), cudaMemcpyDeviceToHost), cudaSuccess);
      int wrong = 0;
      for (int i = 0; i < blocks; ++i) wrong += got[i] != 1000 + i;
      EXPECT_EQ(wrong, 0) << "the reader saw values the writer had not yet written";
      if (blocks == 1)  // a 200 us writer: the reader must have been resident long before it finished
        EXPECT_LT(t[1], t[0]) << "the reader did not launch before the writer finished";
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaFree(a);
    cudaFree(b);
    cudaFree(times);
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace layoutrt::test

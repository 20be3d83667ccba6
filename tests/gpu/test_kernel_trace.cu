// The device timeline (src/cuda/kernel_trace.h) on kernels whose shape and order are known: a kernel that spins for a
// set time, launched plainly and from a CUDA graph instantiated BEFORE the trace started (bench's warm-up builds its
// graphs first), a memset; what was discarded stays out, and the CSV lists the records in start order.
// Fails (never skips) where CUPTI cannot be loaded: the timeline is part of what gpu_check runs.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/kernel_trace.h"

namespace layoutrt::cuda {
namespace {

__global__ void trace_spin_kernel(unsigned long long ns, int* out) {
  unsigned long long t0 = 0, t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
  if (threadIdx.x == 0 && out) out[blockIdx.x] = 1;
}

#define CK(x) ASSERT_EQ((x), cudaSuccess) << #x

TEST(KernelTrace, RecordsKernelsGraphNodesAndMemsets) {
  int* buf = nullptr;
  CK(cudaMalloc(&buf, 64 * sizeof(int)));
  cudaStream_t s = nullptr;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  // A graph of two kernels (3 and 5 blocks), instantiated before the trace exists.
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  trace_spin_kernel<<<3, 64, 0, s>>>(20000, buf);
  trace_spin_kernel<<<5, 32, 0, s>>>(10000, buf);
  CK(cudaStreamEndCapture(s, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  CK(cudaGraphLaunch(exec, s));  // one replay before the trace
  CK(cudaStreamSynchronize(s));

  KernelTrace trace;  // throws (fails the test) without CUPTI
  EXPECT_FALSE(trace.library().empty());
  trace_spin_kernel<<<2, 128, 0, s>>>(1000, buf);  // discarded below
  CK(cudaStreamSynchronize(s));
  trace.discard();

  trace_spin_kernel<<<7, 96, 0, s>>>(30000, buf);
  CK(cudaMemsetAsync(buf, 0, 64 * sizeof(int), s));
  CK(cudaGraphLaunch(exec, s));
  CK(cudaStreamSynchronize(s));
  uint64_t dropped = 1;
  const std::vector<KernelRecord> r = trace.take(&dropped);
  EXPECT_EQ(dropped, 0u);

  std::vector<const KernelRecord*> kernels;
  const KernelRecord* memset = nullptr;
  for (const KernelRecord& k : r) {
    if (k.kind == KernelRecord::Kind::kKernel) kernels.push_back(&k);
    if (k.kind == KernelRecord::Kind::kMemset) memset = &k;
    EXPECT_LE(k.start_ns, k.end_ns) << k.name;
  }
  ASSERT_EQ(kernels.size(), 3u) << "the plain launch and both graph nodes (the discarded launch must be gone)";
  ASSERT_NE(memset, nullptr);
  EXPECT_EQ(memset->bytes, 64 * sizeof(int));
  const int grids[3] = {7, 3, 5}, blocks[3] = {96, 64, 32};
  const double min_us[3] = {30, 20, 10};
  for (int i = 0; i < 3; ++i) {
    const KernelRecord& k = *kernels[i];
    EXPECT_NE(k.name.find("trace_spin_kernel"), std::string::npos) << k.name;
    EXPECT_EQ(k.grid[0], grids[i]) << i;
    EXPECT_EQ(k.block[0], blocks[i]) << i;
    EXPECT_GE((k.end_ns - k.start_ns) / 1e3, min_us[i] * 0.95) << i;
    EXPECT_LT((k.end_ns - k.start_ns) / 1e3, min_us[i] + 1000) << i;
    if (i > 0) EXPECT_GE(k.start_ns, kernels[i - 1]->end_ns) << "one stream: in order, no overlap";
  }
  EXPECT_EQ(kernels[0]->graph_node, 0u) << "a plain launch has no graph node";
  EXPECT_NE(kernels[1]->graph_node, 0u);
  EXPECT_NE(kernels[1]->graph_node, kernels[2]->graph_node);
  EXPECT_GE(memset->start_ns, kernels[0]->end_ns);
  EXPECT_LE(memset->end_ns, kernels[1]->start_ns);

  const std::string csv = kernel_trace_csv(r);
  EXPECT_EQ(csv.rfind("kind,name,start_us,", 0), 0u);
  EXPECT_NE(csv.find("\nkernel,\""), std::string::npos);
  EXPECT_NE(csv.find("\nmemset,\"memset\","), std::string::npos);
  EXPECT_TRUE(trace.take().empty()) << "take() hands each record over once";

  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  CK(cudaStreamDestroy(s));
  CK(cudaFree(buf));
}

TEST(KernelTrace, OneAtATime) {
  KernelTrace trace;
  try {
    KernelTrace second;
    FAIL() << "a second trace while one records";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("already recording"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace layoutrt::cuda

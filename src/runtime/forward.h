// The network, defined once (DESIGN.md): embeddings -> visual embeddings -> joint LayerNorm -> N x layer -> head, as
// a sequence of Backend ops. Both backends run exactly this code.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "layoutrt/engine.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/backend.h"
#include "runtime/batch.h"

namespace layoutrt {

// Weights as the backend holds them, by plan tensor name, plus the per-head bias-by-distance tables.
struct ModelWeights {
  LayoutLMv3Config config;
  HeadKind head = HeadKind::kBase;
  Precision precision = Precision::kFP32;
  bool fp32_residual = false;  // the plan keeps the residual stream in FP32 (BuildOptions::fp32_residual)
  std::map<std::string, TensorView> tensors;
  TensorView bias1d, bias_x, bias_y;  // [heads, 2R+1] F32, undefined when the model has no such bias
  int max_dist_1d = 0, max_dist_2d = 0;
  std::vector<HeadLinear> head_layers;
  const TensorView& at(const std::string& name) const;
};

// Device buffers of one execution context, allocated once for the plan's largest batch.
class Workspace {
 public:
  Workspace(Backend& backend, const ModelWeights& w, int64_t max_batch, int64_t max_text_tokens);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  TensorView hidden, hidden2, qkv, ctx, tmp, ff, patches, proj, attn_scratch;
  // F32 [rows, H]: the residual stream when the plan keeps it in FP32 and activations are FP16/BF16 (undefined
  // otherwise: hidden / hidden2 are the stream).
  TensorView resid;
  TensorView head_in, head_mid, head_out;  // F32
  int32_t *text_row = nullptr, *token_ids = nullptr, *position_ids = nullptr, *token_type_ids = nullptr,
          *boxes = nullptr, *pos1d = nullptr, *pos_x = nullptr, *pos_y = nullptr, *seq_begin = nullptr,
          *cls_row = nullptr, *head_rows = nullptr;
  // The last layer's rows when it computes only the head's (run_forward): queries per sequence, and per compact row
  // (each lane's kept rows at the front of its own rows) the batch row it comes from.
  int32_t *query_rows = nullptr, *compact_src = nullptr;
  uint8_t* key_valid = nullptr;
  float* pixels = nullptr;
  int64_t max_rows = 0, max_batch = 0, max_head_rows = 0;

 private:
  void* alloc(size_t bytes);
  TensorView matrix(DType t, int64_t rows, int64_t cols);
  Backend& backend_;
  std::vector<void*> allocations_;
};

// Runs the forward on a prepared batch; returns host outputs as documented in engine.h. When host_ms is set, adds
// the wall-clock of its phases: "upload", "forward" (until the device is done), "download".
Outputs run_forward(Backend& be, const ModelWeights& w, Workspace& ws, const PreparedBatch& batch,
                    const RunOptions& options, std::map<std::string, double>* host_ms = nullptr);

}  // namespace layoutrt

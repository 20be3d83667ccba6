// The name/shape table of LayoutLMv3 and its heads, and loading + validating a HuggingFace checkpoint against it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "layoutrt/engine.h"
#include "layoutrt/tensor.h"
#include "model/config.h"

namespace layoutrt {

struct WeightSpec {
  std::string name;  // canonical: body tensors without the "layoutlmv3." prefix, head tensors as saved
  Shape shape;
};

// The head's linear layers in order (a dense+tanh head has two: dense, then out_proj). Shared by the checkpoint
// validation, the plan layout and the forward.
struct HeadLinear {
  std::string name;  // "classifier", "classifier.dense", "qa_outputs.out_proj", ...
  int64_t out = 0, in = 0;
};
std::vector<HeadLinear> head_linears(const LayoutLMv3Config& c, HeadKind head);

// Every tensor the model with this config and head must have, in a stable order.
std::vector<WeightSpec> layoutlmv3_weight_specs(const LayoutLMv3Config& c, HeadKind head);

// Buffers transformers saves in some checkpoints that carry no weights; skipped when present.
bool is_ignorable_checkpoint_tensor(const std::string& canonical_name);

// Head from `override_name` (base|token|sequence|qa, "" = detect) or from config.architectures, else from the
// tensor names. Throws when it cannot tell (e.g. classifier.dense without architectures and >= 10 labels).
HeadKind detect_head(const LayoutLMv3Config& c, const std::vector<std::string>& canonical_names,
                     const std::string& override_name);

struct CheckpointWeights {
  std::string dir;
  LayoutLMv3Config config;
  HeadKind head = HeadKind::kBase;
  std::map<std::string, Tensor> tensors;  // canonical name -> tensor as stored (F32/F16/BF16), validated shapes
  std::vector<std::string> files;         // safetensors files read
  std::string stored_dtype;               // "F32", "F16", "BF16" or "mixed"
};

// Reads config.json + model.safetensors (or the sharded index) from dir, maps the tensors, and checks every tensor:
// missing, unexpected, wrong shape or dtype -> layoutrt::Error naming the tensor and both shapes.
CheckpointWeights load_checkpoint(const std::string& dir, const std::string& head_override);

}  // namespace layoutrt

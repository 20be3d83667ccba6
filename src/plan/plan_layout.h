// Which tensors a plan holds, in which dtype and shape, and where each comes from in the checkpoint. The builder
// produces exactly this list; the engine checks a plan against it on load (a plan edited by hand or built by another
// version is rejected with the tensor named).
#pragma once

#include <string>
#include <vector>

#include "layoutrt/engine.h"
#include "model/config.h"

namespace layoutrt {

enum class PlanTransform : uint8_t {
  kCopy,          // one source, same shape
  kReshape,       // one source, new shape (patch conv weight [H,C,p,p] -> [H, C*p*p], cls_token, pos_embed)
  kConcatRows,    // several sources stacked along dim 0 (fused QKV)
  kBuckets1D,     // computed: 1D relative-position bucket table
  kBuckets2D,     // computed: 2D relative-position bucket table
};

struct PlanTensorSpec {
  std::string name;
  DType dtype;
  Shape shape;
  PlanTransform transform;
  std::vector<std::string> sources;  // canonical checkpoint names
};

// Largest |distance| the bias tables cover. 1D: text positions 0..T-1 and visual positions 0..P.
// 2D: box coordinates 0..max_2d_position_embeddings-1.
int plan_max_distance_1d(const LayoutLMv3Config& c, int max_text_tokens);
int plan_max_distance_2d(const LayoutLMv3Config& c);

std::vector<PlanTensorSpec> plan_tensor_specs(const LayoutLMv3Config& c, HeadKind head, Precision p,
                                              int max_text_tokens);

// Names of per-layer plan tensors (one place that spells them).
std::string layer_tensor(int layer, const char* what);  // e.g. layer_tensor(3, "attention.qkv.weight")

}  // namespace layoutrt

// layoutrt public API: build a plan from a HuggingFace LayoutLMv3 checkpoint, load it into an Engine, run it through
// ExecutionContexts.
//
//   layoutrt::BuildOptions opt; opt.checkpoint_dir = "ckpt"; opt.precision = layoutrt::Precision::kFP16;
//   layoutrt::build_plan(opt, "model.plan");
//   auto engine = layoutrt::Engine::load("model.plan");
//   auto ctx = engine->create_context();
//   layoutrt::Inputs inputs;                     // input_ids, bbox, attention_mask, pixel_values (Tensors)
//   inputs.pixel_values = engine->host_tensor(layoutrt::DType::kF32, {B, 3, 224, 224});  // page-locked on CUDA;
//   ...                                          // fill it, keep it across runs
//   layoutrt::Outputs out = ctx->run(inputs);
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layoutrt/error.h"
#include "layoutrt/precision.h"
#include "layoutrt/tensor.h"

namespace layoutrt {

const char* version();  // "0.1.0"

// Which task head sits on the encoder.
enum class HeadKind : uint8_t { kBase, kTokenClassification, kSequenceClassification, kQuestionAnswering };
const char* head_kind_name(HeadKind h);  // "base", "token_classification", ...

// Progress of long work (build, eval): done of total units, with a label. Called from the calling thread.
using ProgressFn = std::function<void(const std::string& label, int64_t done, int64_t total)>;

enum class GemmTuning : uint8_t { kAuto, kOn, kOff };

struct BuildOptions {
  std::string checkpoint_dir;            // config.json + model.safetensors (or sharded with an index)
  Precision precision = Precision::kFP32;
  int max_batch = 8;                     // largest batch an ExecutionContext accepts
  int max_text_tokens = 512;             // largest T (text tokens per sequence); at most 512 and the position table
  std::string head;                      // "" = detect from architectures / tensor names; else base|token|sequence|qa
  // fp16 / bf16 / mixed: keep the residual stream (every LayerNorm's output, which carries the hidden state from
  // layer to layer) in FP32 next to its FP16/BF16 copy for the GEMMs, so it is rounded to 16 bits only where a GEMM
  // reads it. Measured on layoutlmv3-base shapes (H100, bench/results/2026-11-25-h100-residual.md): logits rel-L2
  // vs transformers FP32 1.34e-3 -> 1.27e-3 (fp16), 8.5e-3 -> 7.5e-3 (bf16), for 7 % more time at B = 32 (one wider
  // read and write per LayerNorm). Off by default: most of the 16-bit error is the GEMMs' inputs (weights and
  // activations), not the stream. No effect on fp32 / tf32.
  bool fp32_residual = false;
  // GEMM algorithms stored in the plan: after writing it, load it on CUDA device `cuda_device`, run batches
  // 1, 2, 4, ... max_batch at max_text_tokens so cuBLASLt's candidates for every GEMM shape are timed, and store the
  // winners (with the GPU model and cuBLASLt version) in the plan header. An engine loading the plan on the same GPU
  // model uses them without timing; on another it warns and re-tunes. kAuto: when a CUDA device is present (a
  // failed tuning run, e.g. out of device memory at max_batch, then leaves the plan without a record, with a warning
  // on stderr); kOn: required, any failure fails the build. Other
  // shapes (fewer text tokens, packed batches) are still timed on first use.
  GemmTuning tune_gemm = GemmTuning::kAuto;
  int cuda_device = 0;
  ProgressFn progress;                   // optional
};

// Reads and validates the checkpoint, transforms the weights for `opt.precision`, computes the relative-position
// bucket tables and writes one plan file. Throws layoutrt::Error naming what is wrong.
void build_plan(const BuildOptions& opt, const std::string& plan_path);

// The plan's JSON header, pretty-printed (for `layoutrt inspect`). Verifies magic, version and checksum.
std::string inspect_plan(const std::string& plan_path, bool verify_checksum = true);

enum class BackendKind : uint8_t { kAuto, kCPU, kCUDA };
const char* backend_kind_name(BackendKind b);

struct EngineOptions {
  BackendKind backend = BackendKind::kAuto;  // auto: CUDA when a device is present and compiled in, else CPU
  int cuda_device = 0;
  int cpu_threads = 0;                       // 0: OpenMP default
};

// What a loaded plan computes; from the plan header.
struct ModelInfo {
  HeadKind head = HeadKind::kBase;
  Precision precision = Precision::kFP32;
  DType residual = DType::kF32;      // the residual stream's dtype (BuildOptions::fp32_residual)
  int num_labels = 0;
  std::vector<std::string> labels;   // id2label in id order (empty for base/qa)
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int vocab_size = 0;
  int max_batch = 0;
  int max_text_tokens = 0;
  int image_size = 0;                // pixel_values are [B, channels, image_size, image_size]
  int num_channels = 0;
  int visual_tokens = 0;             // patches + CLS (197 for 224/16); 0 when visual_embed is false
  bool text_embed = true;
  bool visual_embed = true;
};

// Model inputs, as transformers' LayoutLMv3Processor produces them. Integer tensors may be int32 or int64.
//   input_ids      [B, T]          required when the model has text_embed
//   bbox           [B, T, 4]       optional (zeros), x0 y0 x1 y1 in 0..1000 with x0 <= x1, y0 <= y1
//   attention_mask [B, T]          optional (ones); int, bool or float 0/1
//   token_type_ids [B, T]          optional (zeros)
//   pixel_values   [B, C, S, S]    float32 (float16/bfloat16 accepted); optional: without it the text-only forward
//                                  of transformers runs (no visual tokens)
struct Inputs {
  Tensor input_ids, bbox, attention_mask, token_type_ids, pixel_values;
};

// Named outputs (all float32 unless noted):
//   token_classification: logits [B, T, labels], labels [B, T] int32 (argmax)
//   sequence_classification: logits [B, labels], labels [B] int32
//   question_answering: start_logits [B, L], end_logits [B, L]  (L = T + visual tokens)
//   base: last_hidden_state [B, L, H]
//   any head, when RunOptions::output_hidden_state: last_hidden_state too
struct Outputs {
  std::map<std::string, Tensor> tensors;
  const Tensor& at(const std::string& name) const;
};

struct RunOptions {
  bool output_hidden_state = false;
  // Padding-free execution: text tokens with attention_mask 0 are dropped before the encoder and each sequence keeps
  // only its real rows (text + visual), so padding costs nothing. Real tokens' outputs are unchanged (padding is only
  // ever a masked key); the dropped positions' outputs are not computed: their logits / hidden states are 0 and their
  // labels -1. Off by default so every position matches transformers, padding included. Not for question answering
  // (its start/end logits span every position): ignored there.
  bool pack = false;
  // Per-stage device time (embeddings, qkv, attention, out_proj_ln, ffn, head), read back with
  // ExecutionContext::stage_times_ms(). Costs a little (events between ops; CUDA graphs off for that run).
  bool time_stages = false;
};

class Engine;

// One stream + workspace. Not thread-safe itself; use one context per thread. Contexts share the Engine's weights.
class ExecutionContext {
 public:
  virtual ~ExecutionContext() = default;
  // Validates the inputs (clear errors, never a crash) and runs the forward pass.
  virtual Outputs run(const Inputs& inputs, const RunOptions& options = {}) = 0;
  // The CUDA stream (a cudaStream_t) this context queues its work on, for timing with CUDA events; nullptr on the
  // CPU backend. run() returns only after the stream's work for that call is done.
  virtual void* device_stream() const = 0;
  // Milliseconds per stage of the last run() made with RunOptions::time_stages (summed over layers).
  virtual std::map<std::string, double> stage_times_ms() const = 0;
  // Milliseconds of the last run()'s forward pass proper: from the first op to the last, after validation and the
  // host-to-device copies, before the copies back (CUDA events on the GPU, wall-clock on the CPU) — the compute time
  // that `layoutrt bench` reports beside the end-to-end time. < 0 before any run.
  virtual double compute_ms() const = 0;
  // The kernels the last run() took where the backend chooses at run time, e.g. {"attention": "flash",
  // "attention_bias": "cache"} on CUDA; empty on the CPU backend or before any run.
  virtual std::map<std::string, std::string> kernel_choices() const = 0;
  // Host wall-clock milliseconds of the last run()'s phases, which sum to its end-to-end time: "prepare" (input
  // validation, row layout, packing), "upload" (host-to-device copies), "forward" (the ops, until the device has
  // finished them), "download" (copies back and the output tensors). Empty before any run.
  virtual std::map<std::string, double> host_times_ms() const = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Maps and verifies the plan (magic, version, checksum, tensor table) and uploads the weights to the backend.
  static std::shared_ptr<Engine> load(const std::string& plan_path, const EngineOptions& options = {});
  virtual const ModelInfo& info() const = 0;
  virtual BackendKind backend() const = 0;
  virtual std::string device_name() const = 0;  // "CPU (2 threads)" or "NVIDIA H100 80GB HBM3"
  // Where the GEMM algorithms come from (CUDA): "N GEMM algorithms from the plan (tuned on ...)", "no GEMM algorithms
  // in the plan: timed on first use", or a line starting with "warning: " when the plan's were made on another GPU
  // model / cuBLASLt version and are re-tuned. Empty on the CPU.
  virtual std::string gemm_tuning() const = 0;
  virtual std::unique_ptr<ExecutionContext> create_context() = 0;
  // A zero-filled, writable host tensor in the memory this engine's backend uploads from fastest: page-locked on CUDA
  // (run() copies it to the device at the bus's speed, without the driver's extra host copy: pixel_values at B = 32
  // are 19 MB), ordinary memory on the CPU. Fill it (mutable_data_as) and pass it in Inputs; keep and refill it across
  // runs rather than allocating one per run (page-locking is slow to set up). Thread-safe; the tensor may outlive the
  // engine. Throws kOutOfMemory.
  virtual Tensor host_tensor(DType dtype, Shape shape) const = 0;
};

}  // namespace layoutrt

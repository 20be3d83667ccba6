// The op contract. runtime/forward.cpp defines the network ONCE as a sequence of these ops; each backend (cpu/, cuda/)
// implements every op. A new fusion is a new op here with two implementations and one test — never a second copy of
// the forward.
//
// Row layout. The hidden state is a [rows, H] matrix. Sequence b owns rows [seq_begin[b], seq_begin[b+1]): first its
// text rows, then its visual rows (CLS + patches). In the padded layout every sequence has T text rows (pad tokens
// included: they still act as queries, trap 7); key_valid[row] = 0 masks a row as a key. Packed batches may order the
// sequences differently from the batch (runtime/batch.h: longest first): an op that needs the batch index of a
// sequence takes it from its own per-batch arguments (cls_row, the head's rows), never from the seq_begin index.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "layoutrt/precision.h"
#include "model/config.h"
#include "ops/tensor_view.h"

namespace layoutrt {

// Elementwise function applied in a linear op's epilogue.
enum class Epilogue : uint8_t { kNone, kGeluErf, kGeluTanh, kRelu, kSilu, kTanh };
Epilogue epilogue_for(Activation a);

// The embeddings' joint LayerNorm (LayoutLMv3Model.LayerNorm over the concatenated text and visual rows) applied by
// the op that writes the rows, when `weight` is set: each row written is LayerNorm_joint(r) where r is the op's own
// LayerNorm result, first rounded to out's dtype unless out_f32 is set — exactly what writing r (to out, or to the
// FP32 stream out_f32) and running layer_norm over those rows gives, one pass fewer.
struct JointNorm {
  TensorView weight, bias;  // [H] F32; undefined: no joint LayerNorm
  float eps = 1e-5f;
  bool defined() const { return weight.defined(); }
};

// Text embeddings (trap 1: embedding positions are padding-aware, computed on the host):
//   out[dst_row[i]] = LayerNorm(word[token_ids[i]] + token_type[token_type_ids[i]] + position[position_ids[i]]
//                               + concat(x[b0], y[b1], x[b2], y[b3], h[clip(b3-b1)], w[clip(b2-b0)]))
struct TextEmbeddingArgs {
  int64_t num_tokens = 0;
  const int32_t* dst_row = nullptr;         // [num_tokens] device
  const int32_t* token_ids = nullptr;       // [num_tokens] device
  const int32_t* position_ids = nullptr;    // [num_tokens] device
  const int32_t* token_type_ids = nullptr;  // [num_tokens] device
  const int32_t* boxes = nullptr;           // [num_tokens, 4] device
  TensorView word, position, token_type, x, y, h, w;  // tables [n, width]
  TensorView ln_weight, ln_bias;                       // [H] F32
  float eps = 1e-5f;
  TensorView out;                                      // [rows, H]
  TensorView out_f32;  // optional F32 [rows, H]: the same rows unrounded (FP32 residual stream)
  JointNorm joint;     // optional: the model's joint LayerNorm over text and visual rows, applied right away
};

// Visual embeddings: conv(patch, stride patch) as a GEMM over im2col'd patches, + bias; CLS token prepended;
// + pos_embed; LayerNorm `norm` (eps 1e-6). Sequence b's visual rows start at cls_row[b].
struct PatchEmbeddingArgs {
  int64_t batch = 0;
  const float* pixels = nullptr;   // [batch, C, S, S] device, float32
  int channels = 3, image_size = 224, patch_size = 16;
  const int32_t* cls_row = nullptr;  // [batch] device
  TensorView weight;               // [H, C*p*p]
  TensorView bias;                 // [H] F32
  TensorView cls_token;            // [H] F32
  TensorView pos_embed;            // [P+1, H] F32
  TensorView ln_weight, ln_bias;   // [H] F32
  float eps = 1e-6f;
  TensorView patches;              // scratch [batch*P, C*p*p] (dtype of weight)
  TensorView proj;                 // scratch [batch*P, H] (dtype of weight; conv output without its bias)
  TensorView out;                  // [rows, H]
  TensorView out_f32;              // optional F32 [rows, H]: the same rows unrounded (FP32 residual stream)
  JointNorm joint;                 // optional, as in TextEmbeddingArgs
};

// y = epilogue(x · Wᵀ + b). x [M, K], W [N, K] (torch's [out, in]), b [N] F32 or undefined, y [M, N].
struct LinearArgs {
  TensorView x, weight, bias, y;
  Epilogue epilogue = Epilogue::kNone;
};

// out = LayerNorm((x + x_bias) + residual) over the last dim; residual and x_bias may be undefined. out may alias x.
// x_bias (F32 [H]) is the bias of the linear that produced x, folded in here: one pass fewer, and FP16 plans round
// the linear's output once instead of twice.
// FP32 residual stream (plans with residual F32 and FP16/BF16 activations): residual is F32 and out_f32 (F32, may
// alias residual) receives the unrounded result besides out; the embeddings' joint LayerNorm reads F32 x without a
// residual. Otherwise x, residual and out share one dtype.
struct LayerNormArgs {
  TensorView x, residual, weight, bias, out;  // [rows, H]; weight/bias F32
  float eps = 1e-5f;
  TensorView x_bias;                          // optional F32 [H]
  TensorView out_f32;                         // optional F32 [rows, H]
  // Optional hint, no effect on results: tensors (the weights of the GEMMs after this pass) that a GPU backend may
  // pull into its L2 cache while the pass waits for x.
  TensorView l2_prefetch[4] = {};
};

// Multi-head self-attention with LayoutLMv3's relative-position biases:
//   s[h,i,j] = (q_i/√d)·k_j + (bias1d[h][p_j−p_i] + (biasx[h][x_j−x_i] + biasy[h][y_j−y_i])) / √d   (trap 3, 5)
//   over keys j of the same sequence with key_valid[j]; softmax in FP32 (the PB-relax softmax is a max-subtracted
//   softmax); ctx_i = Σ_j softmax · v_j.
// transformers adds the 2D bias only together with the 1D bias (has_relative_attention_bias); the forward passes
// undefined tables when a bias is absent.
struct AttentionArgs {
  int64_t num_seqs = 0;
  int64_t max_seq_len = 0;
  const int32_t* seq_begin = nullptr;  // [first_seq + num_seqs + 1] device row offsets
  // The sequences computed are [first_seq, first_seq + num_seqs) of the batch that seq_begin (and prepare_attention)
  // describe: a lane of the forward (Backend::lanes_for) takes a part of the batch. qkv, out and the per-row arrays
  // keep the whole batch's rows; only the rows of those sequences are read and written.
  int64_t first_seq = 0;
  const int32_t* pos1d = nullptr;      // [rows] 1D bias position (plain arange per modality)
  const int32_t* pos_x = nullptr;      // [rows] 2D bias x (bbox left)
  const int32_t* pos_y = nullptr;      // [rows] 2D bias y (bbox bottom)
  const uint8_t* key_valid = nullptr;  // [rows] 1 = may be attended to
  int num_heads = 0, head_dim = 0;
  TensorView bias1d;                   // [heads, 2*max_dist_1d+1] F32, value for distance r at r + max_dist_1d
  TensorView bias_x, bias_y;           // [heads, 2*max_dist_2d+1] F32
  int max_dist_1d = 0, max_dist_2d = 0;
  TensorView qkv;                      // [rows, 3H]: q | k | v, head h at columns h*d
  TensorView out;                      // [rows, H]
  TensorView scratch;                  // backend-specific workspace (see attention_scratch_bytes)
  // Optional, set by Backend::prepare_attention: the relative biases of every (sequence, head, query tile, key tile)
  // computed once per forward into `scratch` (CUDA flash path: F16 blocks in mma fragment order). The tables above
  // stay the definition; a backend that does not know the cache ignores it.
  TensorView bias_cache;
  // Optional [first_seq + num_seqs] device counts: the rows of sequence b that anything reads afterwards are its first
  // query_rows[b] (the forward's last layer: the rows the head reads). A backend may skip the queries past them; their
  // `out` rows (still inside the sequence) are then left as they were. Keys and values are always the whole sequence.
  const int32_t* query_rows = nullptr;
};

// out[i] = x[rows[i]]: F32 output (the heads), or x's own dtype (the forward's last layer, rows it keeps).
struct GatherRowsArgs {
  TensorView x;                   // [rows, H]
  const int32_t* rows = nullptr;  // [n] device
  int64_t n = 0;
  TensorView out;                 // [n, H] F32 or x.dtype; must not overlap x
};

// out = epilogue(x[rows[i]] · Wᵀ + b) for i < n: a head's first linear on the rows it reads (GatherRowsArgs + LinearArgs
// in one op). x [R, H] any float dtype, W [N, H] F32, b [N] F32 or undefined, out [n, N] F32 (math in FP32; TF32
// where the backend's linear uses it). scratch: F32 [n, H], the gathered rows where a backend gathers first.
struct GatherLinearArgs {
  TensorView x;
  const int32_t* rows = nullptr;  // [n] device
  int64_t n = 0;
  TensorView weight, bias, out;
  Epilogue epilogue = Epilogue::kNone;
  TensorView scratch;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // Memory. Allocation failures throw kOutOfMemory naming the byte count.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  // Host memory the backend's copies to the device read fastest, zero-filled, 64-byte aligned, freed with the last
  // owner (which may outlive the backend): ordinary memory here; page-locked on CUDA. Throws kOutOfMemory.
  virtual std::shared_ptr<void> allocate_host(size_t bytes);
  // Stream-ordered. A page-locked source (allocate_host) must stay unchanged until the stream has run the copy
  // (ExecutionContext::run waits for its stream before returning); any other source may be reused at once.
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill_nan(const TensorView& t) = 0;  // poisons a buffer (tests)
  virtual void synchronize() = 0;
  // The backend's stream (cudaStream_t) where ops are queued; nullptr on the CPU. Lets tools time with CUDA events.
  virtual void* stream() const { return nullptr; }

  // Runs `ops`: a sequence of op calls on fixed shapes and buffers, with no host transfers. A backend may record it
  // once per `key` and replay the recording afterwards (CUDA graphs); `key` must identify every shape involved.
  // `lanes`: how many lanes `ops` open (begin_lanes; 1 where they open none).
  virtual void run_recorded(uint64_t key, int lanes, const std::function<void()>& ops);
  // Milliseconds the last run_recorded() took: device time between events around it on the CUDA backend (waits for
  // it to finish), wall-clock on the CPU (its ops are synchronous). The forward without validation or host transfers:
  // what `layoutrt bench` reports as compute time. < 0 before any run.
  virtual double last_recorded_ms();

  // Stage timing (bench's per-stage breakdown). While enabled, stage(name) closes the current stage and opens `name`;
  // stage(nullptr) closes the last. Times accumulate per name until the next enable. The CPU backend's ops are
  // synchronous, so wall-clock is exact there; the CUDA backend records events on its stream.
  virtual void enable_stage_timing(bool on);
  virtual void stage(const char* name);
  virtual std::map<std::string, double> stage_times_ms();

  // The dtype in which this backend keeps a weight stored as `stored` (the CPU backend computes in FP32 only).
  virtual DType weight_dtype(DType stored) const = 0;
  // The dtype of activations for a plan of precision p.
  virtual DType activation_dtype(Precision p) const = 0;
  // Bytes of attention scratch for a batch of num_seqs sequences of at most max_seq_len rows.
  virtual size_t attention_scratch_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads,
                                         int head_dim) const = 0;

  // Ops.
  virtual void text_embedding(const TextEmbeddingArgs& a) = 0;
  virtual void patch_embedding(const PatchEmbeddingArgs& a) = 0;
  virtual void linear(const LinearArgs& a) = 0;
  virtual void layer_norm(const LayerNormArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  // Once per forward, before the first layer, with the metadata every layer's attention shares (the biases are the
  // encoder's, not a layer's): a backend may precompute from it into a.scratch and record that in `a` (CUDA: the
  // bias blocks, see AttentionArgs::bias_cache). Queued like an op (inside run_recorded). Default: nothing.
  virtual void prepare_attention(AttentionArgs& a) { (void)a; }
  // The kernels the last forward took where a backend chooses at run time (CUDA: "attention" flash|reference,
  // "attention_bias" cache|lookup|none, "attention_tail" the flash kernel's form for a partial last query tile
  // inline|units|none (src/cuda/flash_attention.cu tail_plan), "pdl_early_edges" the programmatic edges its latest
  // graph capture moved to
  // launch completion, src/cuda/graphs.cu; every backend: "lanes", the lane count of the last begin_lanes, and
  // "last_layer_rows", see note_last_layer_rows): `layoutrt bench` prints them, tests assert them. Empty before any
  // forward.
  virtual std::map<std::string, std::string> kernel_choices() const;
  // What the forward's last layer ran on (kernel_choices "last_layer_rows"): "head" (the head's rows only) or "all".
  void note_last_layer_rows(const std::string& rows) { last_layer_rows_ = rows; }
  virtual void gather_rows(const GatherRowsArgs& a) = 0;
  // Default: gather_rows into a.scratch, then linear (the CPU twin); the CUDA backend has one kernel for small heads.
  virtual void gather_linear(const GatherLinearArgs& a);
  // layer_norm(ln), then gather_linear(head) reading its output (head.x = ln.out, head.rows a permutation of ln's
  // rows: the forward's last LayerNorm on the head's rows and the head's first linear). Default: the two ops; the
  // CUDA backend runs one kernel where it can (the same bits; kernel_choices "head_layer_norm" 1 / 0).
  virtual void layer_norm_gather_linear(const LayerNormArgs& ln, const GatherLinearArgs& head);

  // Lanes: independent op sequences that may run concurrently (CUDA: one stream each, forked from the backend's
  // stream and joined back into it; the CPU runs them in turn). The forward splits a batch's sequences into lanes
  // of about equal rows for the encoder layers, so one lane's kernels fill the SMs another's leave idle (the last
  // partial wave of a GEMM, the short tail of an attention grid). Ops of different lanes must not write what another
  // lane reads or writes.
  // lanes_for: how many lanes the backend wants for a batch of num_seqs sequences and `rows` rows (1: no split).
  // LAYOUTRT_LANES=n (read when the backend is made) forces n on any backend (capped at num_seqs); otherwise the
  // backend's policy (CPU: 1).
  virtual int lanes_for(int64_t num_seqs, int64_t rows) const;
  // The most lanes any backend opens (LAYOUTRT_LANES accepts 1 .. kMaxLanes; the CUDA GEMM runner keeps one
  // workspace per lane).
  static constexpr int kMaxLanes = 8;
  // begin_lanes(n) opens n lanes (lane 0 current); lane(i) directs the following ops to lane i; end_lanes() joins them.
  virtual void begin_lanes(int n) { lanes_used_ = n; }
  virtual void lane(int i) { (void)i; }
  virtual void end_lanes() {}

 protected:
  Backend();
  bool stage_timing_ = false;
  int lanes_env_ = 0;    // LAYOUTRT_LANES, 0 when unset
  int lanes_used_ = 0;   // lanes of the last begin_lanes (kernel_choices)
  std::string last_layer_rows_;  // note_last_layer_rows (kernel_choices)

 private:
  std::map<std::string, double> stage_ms_;
  std::string open_stage_;
  std::chrono::steady_clock::time_point open_since_;
  double last_recorded_ms_ = -1;
};

std::unique_ptr<Backend> make_cpu_backend(int threads);
#ifdef LAYOUTRT_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device, Precision precision);
bool cuda_device_available();
// The process-wide cuBLASLt algorithm choices (src/cuda/gemm_algos.h): begin a recording, export the choices first
// used since as JSON text (what `layoutrt build` stores in a plan), seed them from such a record (returns a status
// line, "warning: ..." when the record was made on another device model or cuBLASLt version and is not used).
uint64_t cuda_begin_gemm_recording();
std::string cuda_export_gemm_algorithms(int device, uint64_t since);
std::string cuda_import_gemm_algorithms(int device, const std::string& json);
#endif

}  // namespace layoutrt

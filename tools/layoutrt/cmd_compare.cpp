// layoutrt compare --plan A.plan (--plan2 B.plan | --reference REF.safetensors) --inputs X
//                  [--rtol-l2 1e-5] [--atol 1e-4] [--min-agreement 99.5] [--json]
//
// Runs plan A (and plan B, or reads saved reference outputs: from `layoutrt run --output`, or from Python with the
// same tensor names) on the same inputs and reports, per output tensor: rel-L2 = ||a - r||₂ / ||r||₂ and max |a - r|
// over every element (padding positions too: transformers defines their outputs), and for logits and labels the
// argmax agreement over real tokens (attention_mask = 1). Exit status: 0 every tensor passes, 1 a tolerance is
// missed, else the error codes of the other commands (2 usage, 3 inputs, 4 files, 5 device, ...).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/model_io.h"
#include "io/npy.h"
#include "model/safetensors.h"

namespace layoutrt::cli {

namespace {

namespace fs = std::filesystem;

// Reference outputs: one .safetensors file or a directory of <name>.npy.
std::map<std::string, Tensor> load_reference(const std::string& path) {
  std::map<std::string, Tensor> out;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().extension() == ".npy") out[e.path().stem().string()] = read_npy(e.path().string());
    if (out.empty()) throw_error(ErrorCode::kNotFound, "--reference ", path, ": no .npy files in the directory");
    return out;
  }
  if (!fs::exists(path)) throw_error(ErrorCode::kNotFound, "--reference ", path, ": not found");
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".npy") {
    out[fs::path(path).stem().string()] = read_npy(path);
    return out;
  }
  if (ext != ".safetensors")
    throw_error(ErrorCode::kInvalidArgument, "--reference ", path,
                ": expected a .safetensors file or a directory of .npy files");
  SafetensorsFile f = SafetensorsFile::open(path);
  for (const auto& e : f.entries()) out[e.name] = f.tensor(e.name).clone();
  return out;
}

// attention_mask as 0/1 bytes [B*T], or empty when the inputs have none (all tokens real).
std::vector<uint8_t> real_token_mask(const Inputs& in) {
  std::vector<uint8_t> m;
  if (!in.attention_mask.defined()) return m;
  const Tensor& t = in.attention_mask;
  m.resize(static_cast<size_t>(t.numel()));
  if (dtype_is_float(t.dtype())) {
    const Tensor f = t.to(DType::kF32);
    for (size_t i = 0; i < m.size(); ++i) m[i] = f.data_as<float>()[i] != 0.0f;
  } else {
    const Tensor k = t.to(DType::kI64);
    for (size_t i = 0; i < m.size(); ++i) m[i] = k.data_as<int64_t>()[i] != 0;
  }
  return m;
}

std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (dtype_is_float(t.dtype())) {
    const Tensor f = t.dtype() == DType::kF64 ? t : t.to(DType::kF32);
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = f.dtype() == DType::kF64 ? f.data_as<double>()[i] : static_cast<double>(f.data_as<float>()[i]);
  } else {
    const Tensor k = t.to(DType::kI64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(k.data_as<int64_t>()[i]);
  }
  return v;
}

std::string gfmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct TensorReport {
  std::string name;
  Shape shape;
  bool is_float = true;
  double rel_l2 = 0, max_abs = 0;
  int64_t nonfinite = 0;
  int64_t agree = 0, counted = 0;  // argmax / label agreement over real tokens (counted 0: not applicable)
  bool pass = true;
  std::string why;
};

// Positions whose argmax / label counts: rows of [B, T, ...] over real tokens when the mask is [B, T], else all rows.
bool row_is_real(const std::vector<uint8_t>& mask, const Shape& mask_shape, const Shape& shape, int64_t row) {
  if (mask.empty() || shape.size() < 2 || mask_shape.size() != 2) return true;
  if (shape[0] != mask_shape[0] || shape[1] != mask_shape[1]) return true;
  return mask[static_cast<size_t>(row)] != 0;
}

TensorReport compare_tensor(const std::string& name, const Tensor& a, const Tensor& r, const std::vector<uint8_t>& mask,
                            const Shape& mask_shape, double rtol_l2, double atol, double min_agreement) {
  TensorReport rep;
  rep.name = name;
  rep.shape = a.shape();
  if (a.shape() != r.shape())
    throw_error(ErrorCode::kShapeMismatch, "compare: output ", name, " has shape ", shape_str(a.shape()),
                " but the reference's has shape ", shape_str(r.shape()), " (outputs of other inputs?)");
  rep.is_float = dtype_is_float(a.dtype());
  const std::vector<double> x = as_doubles(a), y = as_doubles(r);
  if (rep.is_float) {
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
        ++rep.nonfinite;
        continue;
      }
      const double d = x[i] - y[i];
      num += d * d;
      den += y[i] * y[i];
      rep.max_abs = std::max(rep.max_abs, std::abs(d));
    }
    rep.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    // Argmax agreement for logits: over the last axis, per row.
    const bool logits = name.find("logits") != std::string::npos && a.rank() >= 2;
    if (logits) {
      const int64_t C = a.dim(-1), rows = a.numel() / std::max<int64_t>(C, 1);
      for (int64_t row = 0; row < rows && C > 0; ++row) {
        if (a.rank() == 3 && !row_is_real(mask, mask_shape, a.shape(), row)) continue;
        const double* xa = x.data() + row * C;
        const double* ya = y.data() + row * C;
        rep.agree += (std::max_element(xa, xa + C) - xa) == (std::max_element(ya, ya + C) - ya);
        ++rep.counted;
      }
    }
    if (rep.nonfinite > 0) {
      rep.pass = false;
      rep.why = std::to_string(rep.nonfinite) + " non-finite values";
    } else if (rep.rel_l2 > rtol_l2) {
      rep.pass = false;
      rep.why = "rel-L2 above " + gfmt(rtol_l2);
    } else if (rep.max_abs > atol) {
      rep.pass = false;
      rep.why = "max-abs above " + gfmt(atol);
    }
  } else {
    // Integer outputs (labels): exact agreement over real tokens.
    for (int64_t i = 0; i < a.numel(); ++i) {
      if (a.rank() == 2 && !row_is_real(mask, mask_shape, a.shape(), i)) continue;
      rep.agree += x[static_cast<size_t>(i)] == y[static_cast<size_t>(i)];
      ++rep.counted;
    }
  }
  if (rep.pass && rep.counted > 0 && 100.0 * rep.agree / rep.counted < min_agreement) {
    rep.pass = false;
    rep.why = "agreement below " + gfmt(min_agreement) + " %";
  }
  return rep;
}

}  // namespace

void register_compare(CLI::App& app) {
  struct Opts {
    std::string plan, plan2, reference, inputs, backend = "auto", backend2;
    double rtol_l2 = 1e-5, atol = 1e-4, min_agreement = 99.5;
    bool json = false;
    int threads = 0, device = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "Run a plan and compare its outputs with a second plan's or with saved reference outputs");
  cmd->add_option("--plan", o->plan, "Plan A")->required();
  auto* p2 = cmd->add_option("--plan2", o->plan2, "Plan B, run on the same inputs");
  auto* ref = cmd->add_option("--reference", o->reference,
                              "Reference outputs: a .safetensors (from `layoutrt run --output` or Python) or a "
                              "directory of .npy, tensor names as layoutrt's outputs (logits, labels, ...)");
  p2->excludes(ref);
  cmd->add_option("--inputs,-i", o->inputs, "Inputs (directory of .npy or one .safetensors), as for `layoutrt run`")
      ->required();
  cmd->add_option("--backend", o->backend, "Backend of plan A: auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--backend2", o->backend2, "Backend of plan B (default: as --backend)");
  cmd->add_option("--rtol-l2", o->rtol_l2, "Largest rel-L2 per float tensor")->capture_default_str();
  cmd->add_option("--atol", o->atol, "Largest max-abs difference per float tensor")->capture_default_str();
  cmd->add_option("--min-agreement", o->min_agreement,
                  "Smallest argmax / label agreement over real tokens, in percent")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the comparison as JSON on stdout instead of a table");
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  cmd->add_option("--device", o->device, "CUDA device index")->capture_default_str();
  cmd->callback([o] {
    if (o->plan2.empty() == o->reference.empty())
      throw_error(ErrorCode::kInvalidArgument, "compare: give exactly one of --plan2 B.plan or --reference FILE");
    if (!(o->rtol_l2 >= 0) || !(o->atol >= 0))
      throw_error(ErrorCode::kInvalidArgument, "compare: --rtol-l2 and --atol must be >= 0");
    std::vector<std::string> ignored;
    const Inputs in = load_inputs(o->inputs, &ignored);
    for (const auto& name : ignored) std::fprintf(stderr, "note: ignoring %s (not a model input)\n", name.c_str());
    // Reference first: a missing file fails before any model loads.
    std::map<std::string, Tensor> ref_out;
    if (!o->reference.empty()) ref_out = load_reference(o->reference);

    auto run_plan = [&](const std::string& plan, const std::string& backend, std::string* desc) {
      EngineOptions eo;
      eo.backend = parse_backend(backend);
      eo.cpu_threads = o->threads;
      eo.cuda_device = o->device;
      auto engine = load_engine(plan, eo);
      *desc = plan + " (" + backend_kind_name(engine->backend()) + ", " + precision_name(engine->info().precision) +
              ", " + engine->device_name() + ")";
      return engine->create_context()->run(in).tensors;
    };
    std::string desc_a, desc_b;
    const std::map<std::string, Tensor> a_out = run_plan(o->plan, o->backend, &desc_a);
    if (!o->plan2.empty())
      ref_out = run_plan(o->plan2, o->backend2.empty() ? o->backend : o->backend2, &desc_b);
    else
      desc_b = o->reference;

    const std::vector<uint8_t> mask = real_token_mask(in);
    const Shape mask_shape = in.attention_mask.defined() ? in.attention_mask.shape() : Shape{};
    std::vector<TensorReport> reports;
    std::vector<std::string> only_a, only_ref;
    for (const auto& [name, t] : a_out) {
      auto it = ref_out.find(name);
      if (it == ref_out.end()) {
        only_a.push_back(name);
        continue;
      }
      reports.push_back(compare_tensor(name, t, it->second, mask, mask_shape, o->rtol_l2, o->atol, o->min_agreement));
    }
    for (const auto& [name, t] : ref_out)
      if (!a_out.count(name)) only_ref.push_back(name);
    if (reports.empty())
      throw_error(ErrorCode::kInvalidArgument, "compare: no output names in common between ", desc_a, " and ", desc_b,
                  " (names must match layoutrt's outputs: logits, labels, start_logits, end_logits, "
                  "last_hidden_state)");
    bool pass = true;
    for (const auto& r : reports) pass = pass && r.pass;

    if (o->json) {
      nlohmann::json j;
      j["a"] = desc_a;
      j["b"] = desc_b;
      j["inputs"] = o->inputs;
      j["rtol_l2"] = o->rtol_l2;
      j["atol"] = o->atol;
      j["min_agreement_percent"] = o->min_agreement;
      for (const auto& r : reports) {
        nlohmann::json t = {{"name", r.name}, {"shape", r.shape}, {"pass", r.pass}};
        if (r.is_float) {
          t["rel_l2"] = r.rel_l2;
          t["max_abs"] = r.max_abs;
          t["nonfinite"] = r.nonfinite;
        }
        if (r.counted > 0) {
          t["agreement_percent"] = 100.0 * r.agree / r.counted;
          t["agreement_count"] = {r.agree, r.counted};
        }
        if (!r.why.empty()) t["why"] = r.why;
        j["tensors"].push_back(t);
      }
      j["only_in_a"] = only_a;
      j["only_in_b"] = only_ref;
      j["pass"] = pass;
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf("A: %s\nB: %s\ninputs: %s\n", desc_a.c_str(), desc_b.c_str(), o->inputs.c_str());
      std::printf("%-18s %-16s %12s %12s %10s  %s\n", "tensor", "shape", "rel-L2", "max-abs", "argmax%", "result");
      for (const auto& r : reports) {
        char agree[32] = "-";
        if (r.counted > 0) std::snprintf(agree, sizeof agree, "%.2f", 100.0 * r.agree / r.counted);
        char rel[32] = "-", mx[32] = "-";
        if (r.is_float) {
          std::snprintf(rel, sizeof rel, "%.3e", r.rel_l2);
          std::snprintf(mx, sizeof mx, "%.3e", r.max_abs);
        }
        std::printf("%-18s %-16s %12s %12s %10s  %s%s%s\n", r.name.c_str(), shape_str(r.shape).c_str(), rel, mx, agree,
                    r.pass ? "PASS" : "FAIL", r.why.empty() ? "" : ": ", r.why.c_str());
      }
      for (const auto& n : only_a) std::printf("note: %s only in A, not compared\n", n.c_str());
      for (const auto& n : only_ref) std::printf("note: %s only in B, not compared\n", n.c_str());
      std::printf("%s (rel-L2 <= %g, max-abs <= %g, agreement >= %g %% over real tokens)\n", pass ? "PASS" : "FAIL",
                  o->rtol_l2, o->atol, o->min_agreement);
    }
    std::fflush(stdout);
    if (!pass) throw CLI::RuntimeError(1);  // main returns its code: 1 = tolerance missed
  });
}

}  // namespace layoutrt::cli

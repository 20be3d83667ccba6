#include "pipeline/formats.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "layoutrt/error.h"
#include "pipeline/image.h"

namespace fs = std::filesystem;

namespace layoutrt::pipeline {

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw_error(ErrorCode::kNotFound, path, ": cannot open");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCode::kFormat, path, ": not valid JSON (", e.what(), ")");
  }
}

// Python's str.strip() == "" for the characters FUNSD has (ASCII whitespace and the Unicode spaces).
bool is_blank(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) continue;
    if (c == 0xC2 && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) == 0xA0 ||
                                          static_cast<unsigned char>(s[i + 1]) == 0x85)) {
      ++i;
      continue;
    }
    return false;
  }
  return true;
}

std::array<double, 4> read_box(const nlohmann::json& b, const std::string& where) {
  if (!b.is_array() || b.size() != 4)
    throw_error(ErrorCode::kFormat, where, ": \"box\" must be [x0, y0, x1, y1], got ", b.dump());
  std::array<double, 4> r{};
  for (int k = 0; k < 4; ++k) {
    if (!b[k].is_number()) throw_error(ErrorCode::kFormat, where, ": box value ", b[k].dump(), " is not a number");
    r[k] = b[k].get<double>();
  }
  return r;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<std::string>& funsd_labels() {
  static const std::vector<std::string> l = {"O",          "B-HEADER", "I-HEADER", "B-QUESTION",
                                             "I-QUESTION", "B-ANSWER", "I-ANSWER"};
  return l;
}

}  // namespace layoutrt::pipeline

namespace layoutrt {

bool Document::has_labels() const {
  return !words.empty() && std::all_of(words.begin(), words.end(), [](const DocumentWord& w) { return !w.label.empty(); });
}

Document load_document(const std::string& json_path, const std::string& image_override) {
  using namespace pipeline;
  const nlohmann::json j = read_json(json_path);
  Document d;
  d.path = json_path;
  d.id = fs::path(json_path).stem().string();
  const fs::path dir = fs::path(json_path).parent_path();
  if (j.is_object() && j.contains("form")) {
    // FUNSD: <root>/annotations/<id>.json and <root>/images/<id>.png
    const fs::path img = dir.parent_path() / "images" / (d.id + ".png");
    if (fs::exists(img)) d.image_path = img.string();
    const auto& form = j.at("form");
    if (!form.is_array()) throw_error(ErrorCode::kFormat, json_path, ": \"form\" is not a list");
    for (size_t e = 0; e < form.size(); ++e) {
      const auto& ent = form[e];
      const std::string where = json_path + ": form[" + std::to_string(e) + "]";
      if (!ent.contains("words") || !ent["words"].is_array())
        throw_error(ErrorCode::kFormat, where, " has no \"words\" list");
      const std::string label = ent.value("label", std::string("other"));
      if (label != "question" && label != "answer" && label != "header" && label != "other")
        throw_error(ErrorCode::kFormat, where, ": label \"", label, "\" is not question/answer/header/other");
      bool first = true;
      for (size_t k = 0; k < ent["words"].size(); ++k) {
        const auto& w = ent["words"][k];
        const std::string wwhere = where + ".words[" + std::to_string(k) + "]";
        if (!w.contains("text") || !w["text"].is_string()) throw_error(ErrorCode::kFormat, wwhere, " has no text");
        DocWord dw;
        dw.text = w["text"].get<std::string>();
        if (is_blank(dw.text)) continue;
        dw.box = read_box(w.value("box", nlohmann::json()), wwhere);
        dw.label = label == "other" ? "O" : (first ? "B-" : "I-") + upper(label);
        first = false;
        d.words.push_back(std::move(dw));
      }
    }
  } else if (j.is_object() && j.contains("words")) {
    if (j.contains("image")) {
      const fs::path img = j["image"].get<std::string>();
      d.image_path = (img.is_absolute() ? img : dir / img).string();
    }
    d.width = j.value("width", 0);
    d.height = j.value("height", 0);
    const auto& words = j.at("words");
    if (!words.is_array()) throw_error(ErrorCode::kFormat, json_path, ": \"words\" is not a list");
    for (size_t k = 0; k < words.size(); ++k) {
      const auto& w = words[k];
      const std::string where = json_path + ": words[" + std::to_string(k) + "]";
      if (!w.is_object() || !w.contains("text") || !w["text"].is_string())
        throw_error(ErrorCode::kFormat, where, " has no \"text\" string");
      DocWord dw;
      dw.text = w["text"].get<std::string>();
      dw.box = read_box(w.value("box", nlohmann::json()), where + " (\"" + dw.text + "\")");
      if (w.contains("label")) dw.label = w["label"].get<std::string>();
      d.words.push_back(std::move(dw));
    }
  } else {
    throw_error(ErrorCode::kFormat, json_path, ": neither a FUNSD annotation (\"form\") nor an OCR document (\"words\")");
  }
  if (!image_override.empty()) d.image_path = image_override;
  if ((d.width <= 0 || d.height <= 0)) {
    if (d.image_path.empty())
      throw_error(ErrorCode::kInvalidArgument, json_path,
                  ": the page size is unknown: give \"width\"/\"height\" or a page image (--image)");
    const auto wh = image_size(d.image_path);
    d.width = wh[0];
    d.height = wh[1];
  }
  return d;
}

}  // namespace layoutrt

namespace layoutrt::pipeline {

std::vector<Box> normalized_boxes(const Document& doc) {
  std::vector<Box> out;
  out.reserve(doc.words.size());
  for (size_t i = 0; i < doc.words.size(); ++i) {
    const auto& b = doc.words[i].box;
    const bool inverted = b[0] > b[2] || b[1] > b[3];
    const bool outside = b[0] < 0 || b[1] < 0 || b[2] > doc.width || b[3] > doc.height;
    if (inverted || outside)
      throw_error(ErrorCode::kInputOutOfRange, doc.path, ": word ", i, " \"", doc.words[i].text, "\" has box [", b[0],
                  ", ", b[1], ", ", b[2], ", ", b[3], "] ", inverted ? "inverted (x0 > x1 or y0 > y1)" : "outside",
                  " the page ", doc.width, "x", doc.height);
    // Python's int(1000 * x / width): double product and quotient, truncated.
    out.push_back({static_cast<int32_t>(1000.0 * b[0] / doc.width), static_cast<int32_t>(1000.0 * b[1] / doc.height),
                   static_cast<int32_t>(1000.0 * b[2] / doc.width), static_cast<int32_t>(1000.0 * b[3] / doc.height)});
  }
  return out;
}

std::vector<std::string> dataset_documents(const std::string& data_dir, const std::string& split) {
  std::vector<std::string> candidates = {split};
  if (split == "test") candidates.push_back("testing_data");
  if (split == "train") candidates.push_back("training_data");
  for (const auto& c : candidates) {
    const fs::path ann = fs::path(data_dir) / c / "annotations";
    if (!fs::is_directory(ann)) continue;
    std::vector<std::string> docs;
    for (const auto& e : fs::directory_iterator(ann))
      if (e.path().extension() == ".json") docs.push_back(e.path().string());
    std::sort(docs.begin(), docs.end());
    if (docs.empty()) throw_error(ErrorCode::kNotFound, ann.string(), ": no .json annotations");
    return docs;
  }
  throw_error(ErrorCode::kNotFound, data_dir, ": no ", split, "/annotations",
              split == "test" ? " or testing_data/annotations" : split == "train" ? " or training_data/annotations" : "",
              " folder");
}

}  // namespace layoutrt::pipeline

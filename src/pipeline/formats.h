// Document formats read by `layoutrt run --document` and `layoutrt eval`:
//   FUNSD annotation JSON: {"form": [{"label": question|answer|header|other, "words": [{"text", "box"}], ...}]}; the
//     page is images/<stem>.png next to the annotations/ folder. Word labels follow the common FUNSD preprocessing
//     (the HF datasets script for LayoutLMv3): words whose text is blank are dropped, an entity labelled "other" gives
//     O to its words, else B-<LABEL> on its first word and I-<LABEL> on the rest.
//   OCR JSON: {"image": "page.png" (relative to the JSON file), "width": W, "height": H,
//              "words": [{"text": ..., "box": [x0, y0, x1, y1]}]}  (labels optional: "label" per word)
#pragma once

#include <array>
#include <string>
#include <vector>

#include "layoutrt/pipeline.h"
#include "pipeline/layout_encoder.h"

namespace layoutrt::pipeline {

using DocWord = layoutrt::DocumentWord;
using Document = layoutrt::Document;

// The BIO labels of FUNSD in the order of the common preprocessing's label list.
const std::vector<std::string>& funsd_labels();

// load_document (include/layoutrt/pipeline.h) reads a FUNSD annotation or an OCR JSON (detected by its "form" /
// "words" key). The page size comes from "width"/"height" or else from the image's header; a document without either
// is an error.

// Boxes in 0..1000 as LayoutLMv3's processor expects them: int(1000 * x / width), int(1000 * y / height) (truncating).
// A box outside the page or inverted (x0 > x1 or y0 > y1) is an error naming the word's index and text.
std::vector<Box> normalized_boxes(const Document& doc);

// FUNSD-style dataset folder: <data>/<split>/annotations/*.json (+ images/) with split names as in the FUNSD
// release (training_data / testing_data) or plain (train / test). Returns the annotation paths, sorted.
std::vector<std::string> dataset_documents(const std::string& data_dir, const std::string& split);

}  // namespace layoutrt::pipeline

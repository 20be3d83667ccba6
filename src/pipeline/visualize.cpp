// write_visualization (include/layoutrt/pipeline.h): entity boxes over the page, coloured by label, with a legend.
#include <algorithm>
#include <map>

#include "layoutrt/pipeline.h"
#include "pipeline/image.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>

namespace layoutrt {

namespace {

using Rgb = std::array<uint8_t, 3>;

Rgb colour_of(const std::string& label, size_t index) {
  static const std::map<std::string, Rgb> known = {
      {"QUESTION", {30, 100, 230}}, {"ANSWER", {20, 160, 60}}, {"HEADER", {240, 130, 0}}};
  static const Rgb palette[] = {{200, 30, 40}, {150, 60, 200}, {0, 160, 170}, {180, 150, 0}, {230, 60, 160}};
  auto it = known.find(label);
  return it != known.end() ? it->second : palette[index % (sizeof palette / sizeof palette[0])];
}

struct Canvas {
  pipeline::RgbImage img;
  void fill(int x0, int y0, int x1, int y1, Rgb c) {  // [x0, x1) × [y0, y1), clipped
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) std::copy(c.begin(), c.end(), &img.pixels[(static_cast<size_t>(y) * img.width + x) * 3]);
  }
  void frame(int x0, int y0, int x1, int y1, int t, Rgb c) {
    fill(x0 - t, y0 - t, x1 + t, y0, c);
    fill(x0 - t, y1, x1 + t, y1 + t, c);
    fill(x0 - t, y0, x0, y1, c);
    fill(x1, y0, x1 + t, y1, c);
  }
  // stb_easy_font renders text as axis-aligned quads; each is filled at `scale`.
  void text(int x, int y, const std::string& s, int scale, Rgb c) {
    static char buf[99999];
    const int quads = stb_easy_font_print(0, 0, const_cast<char*>(s.c_str()), nullptr, buf, sizeof buf);
    const float* v = reinterpret_cast<const float*>(buf);
    for (int q = 0; q < quads; ++q, v += 16) {  // 4 vertices of {x, y, z, rgba} = 16 floats
      fill(x + static_cast<int>(v[0] * scale), y + static_cast<int>(v[1] * scale), x + static_cast<int>(v[8] * scale),
           y + static_cast<int>(v[9] * scale), c);
    }
  }
};

}  // namespace

void write_visualization(const Document& doc, const DocumentResult& result, const std::string& png_path) {
  Canvas cv;
  if (!doc.image_path.empty()) {
    cv.img = pipeline::load_image(doc.image_path);
  } else {
    cv.img.width = std::max(doc.width, 1);
    cv.img.height = std::max(doc.height, 1);
    cv.img.pixels.assign(static_cast<size_t>(cv.img.width) * cv.img.height * 3, 255);
  }
  // Boxes are in the document's page coordinates; scale them when the image has another size.
  const double sx = doc.width > 0 ? static_cast<double>(cv.img.width) / doc.width : 1.0;
  const double sy = doc.height > 0 ? static_cast<double>(cv.img.height) / doc.height : 1.0;
  const int t = std::max(2, cv.img.width / 500);
  std::map<std::string, Rgb> used;
  for (const EntityResult& e : result.entities) {
    const Rgb c = colour_of(e.label, used.size());
    used.emplace(e.label, c);
    cv.frame(static_cast<int>(e.box[0] * sx), static_cast<int>(e.box[1] * sy), static_cast<int>(e.box[2] * sx),
             static_cast<int>(e.box[3] * sy), t, used.at(e.label));
  }
  // Legend, top-right: a swatch and the label name per entity type.
  const int scale = std::max(2, cv.img.width / 400), line = 12 * scale, pad = 4 * scale;
  int widest = 0;
  for (const auto& kv : used) widest = std::max(widest, stb_easy_font_width(const_cast<char*>(kv.first.c_str())) * scale);
  const int box_w = pad * 3 + line + widest, box_h = pad * 2 + line * static_cast<int>(std::max<size_t>(used.size(), 1));
  const int lx = cv.img.width - box_w - pad, ly = pad;
  cv.fill(lx, ly, lx + box_w, ly + box_h, {255, 255, 255});
  cv.frame(lx, ly, lx + box_w, ly + box_h, 1, {0, 0, 0});
  int row = 0;
  if (used.empty()) cv.text(lx + pad, ly + pad, "no entities", scale, {0, 0, 0});
  for (const auto& [label, c] : used) {
    const int y = ly + pad + row++ * line;
    cv.fill(lx + pad, y, lx + pad + line - scale * 2, y + line - scale * 2, c);
    cv.text(lx + pad * 2 + line, y + scale, label, scale, {0, 0, 0});
  }
  if (!stbi_write_png(png_path.c_str(), cv.img.width, cv.img.height, 3, cv.img.pixels.data(), cv.img.width * 3))
    throw_error(ErrorCode::kIo, png_path, ": cannot write PNG");
}

}  // namespace layoutrt

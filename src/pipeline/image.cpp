#include "pipeline/image.h"

#include <cmath>
#include <memory>

#include "layoutrt/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

namespace layoutrt::pipeline {

RgbImage load_image(const std::string& path) {
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load(path.c_str(), &w, &h, &channels, 3), stbi_image_free);
  if (!data) throw_error(ErrorCode::kFormat, path, ": cannot decode image (", stbi_failure_reason(), ")");
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

std::array<int, 2> image_size(const std::string& path) {
  int w = 0, h = 0, c = 0;
  if (!stbi_info(path.c_str(), &w, &h, &c))
    throw_error(ErrorCode::kFormat, path, ": cannot read image header (", stbi_failure_reason(), ")");
  return {w, h};
}

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // fixed-point bits of the coefficients (PIL's 8-bit path)

// Per output pixel: the first input index, the number of inputs and their fixed-point weights (ksize per pixel).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// The triangle ("bilinear") filter, support 1, stretched by the reduction factor when downscaling so that every
// input pixel contributes (antialiasing). Pixel centres at i + 0.5.
Coefficients bilinear_coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double inv = 1.0 / filterscale;
    // C casts truncate toward zero; the +0.5 rounds the window's ends.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::fabs((x + xmin - center + 0.5) * inv);
      k[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      // Round half away from zero into fixed point.
      c.weights[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

}  // namespace

RgbImage resize_bilinear(const RgbImage& in, int out_width, int out_height) {
  if (in.width <= 0 || in.height <= 0 || out_width <= 0 || out_height <= 0)
    throw_error(ErrorCode::kInvalidArgument, "resize: ", in.width, "x", in.height, " -> ", out_width, "x", out_height);
  if (in.width == out_width && in.height == out_height) return in;  // PIL returns a copy
  const Coefficients ch = bilinear_coefficients(in.width, out_width);
  const Coefficients cv = bilinear_coefficients(in.height, out_height);
  // Horizontal pass over the rows the vertical pass reads (PIL skips the others; the result is the same).
  const bool horizontal = out_width != in.width, vertical = out_height != in.height;
  const int row_first = vertical ? cv.first[0] : 0;
  const int row_last = vertical ? cv.first[out_height - 1] + cv.count[out_height - 1] : in.height;
  RgbImage tmp;
  const RgbImage* src = &in;
  int src_row0 = 0;
  if (horizontal) {
    tmp.width = out_width;
    tmp.height = row_last - row_first;
    tmp.pixels.resize(static_cast<size_t>(tmp.width) * tmp.height * 3);
    for (int y = 0; y < tmp.height; ++y) {
      const uint8_t* row = &in.pixels[static_cast<size_t>(y + row_first) * in.width * 3];
      uint8_t* out = &tmp.pixels[static_cast<size_t>(y) * out_width * 3];
      for (int xx = 0; xx < out_width; ++xx) {
        const int32_t* k = &ch.weights[static_cast<size_t>(xx) * ch.ksize];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        const uint8_t* p = row + static_cast<size_t>(ch.first[xx]) * 3;
        for (int x = 0; x < ch.count[xx]; ++x, p += 3) {
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        out[xx * 3 + 0] = clip8(s0);
        out[xx * 3 + 1] = clip8(s1);
        out[xx * 3 + 2] = clip8(s2);
      }
    }
    src = &tmp;
    src_row0 = row_first;
  }
  if (!vertical) return horizontal ? tmp : in;
  RgbImage out;
  out.width = src->width;
  out.height = out_height;
  out.pixels.resize(static_cast<size_t>(out.width) * out_height * 3);
  const size_t stride = static_cast<size_t>(src->width) * 3;
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* k = &cv.weights[static_cast<size_t>(yy) * cv.ksize];
    const int y0 = cv.first[yy] - src_row0;
    for (int xx = 0; xx < out.width * 3; ++xx) {
      int32_t s = 1 << (kPrecisionBits - 1);
      const uint8_t* p = &src->pixels[static_cast<size_t>(y0) * stride + xx];
      for (int y = 0; y < cv.count[yy]; ++y, p += stride) s += *p * k[y];
      out.pixels[static_cast<size_t>(yy) * out.width * 3 + xx] = clip8(s);
    }
  }
  return out;
}

std::vector<float> pixel_values(const RgbImage& page, const ImagePreprocess& p) {
  const RgbImage r = resize_bilinear(page, p.size, p.size);
  const size_t plane = static_cast<size_t>(p.size) * p.size;
  std::vector<float> out(3 * plane);
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) {
      const float v = static_cast<float>(r.pixels[i * 3 + c] * p.rescale_factor);
      out[c * plane + i] = (v - p.mean[c]) / p.std[c];
    }
  return out;
}

}  // namespace layoutrt::pipeline

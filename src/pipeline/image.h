// Page images: decode (PNG/JPEG/BMP/... through stb_image) and LayoutLMv3ImageProcessor's preprocessing:
// resize to size×size with PIL's bilinear filter, rescale by 1/255, normalise with mean/std → pixel_values [3,S,S].
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace layoutrt::pipeline {

// 8-bit RGB, interleaved, row-major. Grey and palette images are expanded (as PIL's convert("RGB")), alpha dropped.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

RgbImage load_image(const std::string& path);
// Width and height from the file's header, without decoding it.
std::array<int, 2> image_size(const std::string& path);

// PIL's Image.resize(size, Image.BILINEAR) of an RGB uint8 image, bit for bit: a triangle filter whose support is
// scaled by the reduction factor (antialiasing), coefficients normalised in double, rounded to 22-bit fixed point,
// horizontal pass then vertical pass, each rounding to uint8.
RgbImage resize_bilinear(const RgbImage& in, int out_width, int out_height);

struct ImagePreprocess {
  int size = 224;                          // LayoutLMv3ImageProcessor: size {height: 224, width: 224}
  double rescale_factor = 1.0 / 255.0;     // rescale_factor
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};  // image_mean (IMAGENET_STANDARD_MEAN)
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};   // image_std (IMAGENET_STANDARD_STD)
};

// pixel_values [3, size, size] (channel-major), float32 math as transformers' slow image processor: resize, then
// float32(u8 · rescale_factor in double), then (x − mean) / std in float32.
std::vector<float> pixel_values(const RgbImage& page, const ImagePreprocess& p = {});

}  // namespace layoutrt::pipeline

// Image preprocessing against transformers' slow (PIL) LayoutLMv3 image processor: PIL's bilinear resize bit for bit
// on three full-resolution FUNSD pages, and pixel_values = (u8/255 - 0.5)/0.5 in float32 (fixtures from
// python/make_pipeline_fixtures.py, which asserts that transformers' pixel_values are exactly that).
#include <nlohmann/json.hpp>

#include "pipeline/image.h"
#include "test_util.h"

namespace layoutrt {
namespace {

class PagePixels : public ::testing::TestWithParam<std::string> {};

TEST_P(PagePixels, ResizeIsBitExactAndPixelValuesMatch) {
  const std::string id = GetParam();
  const pipeline::RgbImage page = pipeline::load_image(test::fixtures("pipeline/funsd/training_data/images/" + id + ".png"));
  const pipeline::RgbImage expected = pipeline::load_image(test::fixtures("pipeline/expected/" + id + "_resized.png"));
  const pipeline::RgbImage got = pipeline::resize_bilinear(page, 224, 224);
  ASSERT_EQ(got.width, 224);
  ASSERT_EQ(got.height, 224);
  int64_t differing = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) differing += got.pixels[i] != expected.pixels[i];
  EXPECT_EQ(differing, 0) << "uint8 values differing from PIL's resize of " << page.width << "x" << page.height;

  std::ifstream f(test::fixtures("pipeline/expected/" + id + ".json"));
  const auto exp = nlohmann::json::parse(f).at("pixel_values");
  const std::vector<float> px = pipeline::pixel_values(page);
  ASSERT_EQ(px.size(), 3u * 224 * 224);
  double sum = 0;
  float lo = px[0], hi = px[0];
  for (float v : px) sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_NEAR(sum, exp.at("sum").get<double>(), 1e-3);
  EXPECT_EQ(lo, exp.at("min").get<float>());
  EXPECT_EQ(hi, exp.at("max").get<float>());
  const auto row = exp.at("row0_channel0").get<std::vector<float>>();
  for (size_t i = 0; i < row.size(); ++i) EXPECT_EQ(px[i], row[i]) << "pixel_values[0][0][" << i << "]";
  for (size_t i = 0; i < got.pixels.size(); i += 997) {  // channel-major layout of the resized image
    const size_t pix = i / 3, c = i % 3;
    EXPECT_EQ(px[c * 224 * 224 + pix], (static_cast<float>(got.pixels[i] * (1.0 / 255.0)) - 0.5f) / 0.5f);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PagePixels, ::testing::Values("0060308251", "0013255595", "0060025670"));

TEST(PipelineImage, ConstantImagesStayConstantUpAndDown) {
  for (auto [w, h] : {std::pair{1000, 700}, std::pair{50, 30}, std::pair{224, 100}}) {
    pipeline::RgbImage img;
    img.width = w;
    img.height = h;
    img.pixels.assign(static_cast<size_t>(w) * h * 3, 0);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(40 + 80 * (i % 3));
    const auto r = pipeline::resize_bilinear(img, 224, 224);
    for (size_t i = 0; i < r.pixels.size(); ++i) ASSERT_EQ(r.pixels[i], 40 + 80 * (i % 3)) << w << "x" << h;
  }
}

TEST(PipelineImage, UnreadableFileIsAClearError) {
  test::ScratchDir dir("img");
  std::ofstream(dir.file("x.png")) << "not a png";
  try {
    pipeline::load_image(dir.file("x.png"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.png"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace layoutrt

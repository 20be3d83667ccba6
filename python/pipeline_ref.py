"""Reference side of the document pipeline: FUNSD loading as the common preprocessing does it (the HF datasets
script used with LayoutLMv3), and transformers' LayoutLMv3 tokenizer / image processors built from a folder with
roberta-base's vocab.json + merges.txt. Shared by check_pipeline_parity.py, make_pipeline_fixtures.py and
train_funsd.py."""
import glob
import json
import os

LABELS = ["O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER"]


def split_dir(data, split):
    for name in (split, {"train": "training_data", "test": "testing_data"}.get(split, split)):
        if os.path.isdir(os.path.join(data, name, "annotations")):
            return os.path.join(data, name)
    raise SystemExit(f"{data}: no {split}/annotations folder")


def annotation_paths(data, split):
    return sorted(glob.glob(os.path.join(split_dir(data, split), "annotations", "*.json")))


def normalize_bbox(box, width, height):
    # as the FUNSD preprocessing: int(1000 * x / width)
    return [int(1000 * box[0] / width), int(1000 * box[1] / height),
            int(1000 * box[2] / width), int(1000 * box[3] / height)]


def load_funsd(path):
    """(words, pixel boxes, normalised boxes, BIO labels, RGB PIL image) of one FUNSD annotation."""
    from PIL import Image
    with open(path, encoding="utf-8") as f:
        form = json.load(f)["form"]
    image_path = os.path.join(os.path.dirname(os.path.dirname(path)), "images",
                              os.path.splitext(os.path.basename(path))[0] + ".png")
    image = Image.open(image_path).convert("RGB")
    width, height = image.size
    words, boxes, labels = [], [], []
    for item in form:
        ws = [w for w in item["words"] if w["text"].strip() != ""]
        if not ws:
            continue
        label = item["label"]
        for k, w in enumerate(ws):
            words.append(w["text"])
            boxes.append(w["box"])
            labels.append("O" if label == "other" else ("B-" if k == 0 else "I-") + label.upper())
    norm = [normalize_bbox(b, width, height) for b in boxes]
    return words, boxes, norm, labels, image, image_path


def tokenizer(vocab_dir):
    from transformers import LayoutLMv3Tokenizer
    return LayoutLMv3Tokenizer.from_pretrained(vocab_dir)


def image_processors():
    """(slow PIL processor, fast torchvision processor), apply_ocr=False."""
    from transformers import LayoutLMv3ImageProcessor, LayoutLMv3ImageProcessorPil
    return LayoutLMv3ImageProcessorPil(apply_ocr=False), LayoutLMv3ImageProcessor(apply_ocr=False)


def processor(vocab_dir, fast_images=False):
    from transformers import LayoutLMv3Processor
    slow, fast = image_processors()
    return LayoutLMv3Processor(image_processor=fast if fast_images else slow, tokenizer=tokenizer(vocab_dir))

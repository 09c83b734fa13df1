"""The PyTorch peer of khulasa's benchmarks, on the same model folder.

Encoder: the same texts and batch shapes as `cargo bench --bench encoder`
(written there with --write-texts), Hugging Face transformers' BertModel in
float32, mean pooling, L2, `torch.inference_mode`, the same thread count.

End to end: the same corpus as `cargo bench --bench archive`, through the
same steps khulasa runs per article, written the plain way one would in
Python: split the page into lines and sentences, embed every sentence and
the whole story, score topics against label prototypes, stance against the
target and polarity prototypes, and pick a focused summary by similarity
and MMR. Label, target, polarity and focus vectors are embedded once before
timing, as khulasa does at start-up. It is simpler than khulasa's pipeline
(no page cleaning state machine, no calibration, no fitted heads), so it
flatters the peer.

Prints one JSON object with the figures.
"""

import argparse
import json
import re
import statistics
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from transformers import BertModel, PreTrainedTokenizerFast


def load(model_dir: Path):
    tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    tok.pad_token = "<pad>"
    model = BertModel.from_pretrained(str(model_dir), dtype=torch.float32, add_pooling_layer=False)
    model.eval()
    return tok, model


def embed(tok, model, texts, prefix="passage: ", max_len=512):
    enc = tok([prefix + t for t in texts], padding=True, truncation=True,
              max_length=max_len, return_tensors="pt")
    with torch.inference_mode():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    v = (h * m).sum(1) / m.sum(1)
    v = torch.nn.functional.normalize(v, dim=-1)
    return v.numpy(), int(enc["attention_mask"].sum())


def bench_encoder(tok, model, shapes):
    out = []
    for shape in shapes:
        texts = shape["texts"]
        # khulasa's texts already count the prompt and special tokens.
        enc = tok(["passage: " + t for t in texts], padding=True, return_tensors="pt")
        assert enc["input_ids"].shape == (shape["batch"], shape["len"]), enc["input_ids"].shape
        tokens = int(enc["attention_mask"].sum())
        embed(tok, model, texts)  # warm-up
        runs = max(3, min(20, 20000 // tokens))
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            embed(tok, model, texts)
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        out.append({"shape": f"{shape['batch']}x{shape['len']}", "tokens": tokens,
                    "median_ms": median * 1e3, "tokens_per_s": tokens / median})
    return out


SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+")


def sentences(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if len(line.split()) < 4:  # menus, tags, dates
            continue
        out.extend(s for s in SENTENCE_END.split(line) if s.strip())
    return out


def bench_pipeline(tok, model, root: Path, corpus: Path):
    labels = tomllib.loads((root / "models/labels/security-news.toml").read_text())
    label_ids, label_texts = [], []
    for label in labels["label"]:
        d = label["description"]
        label_ids.append(label["id"])
        label_texts.append(" ".join(d) if isinstance(d, list) else d)
    targets = tomllib.loads((root / "models/stance/targets.toml").read_text())["target"]
    target = " ".join(targets[0]["description"])
    polarity = tomllib.loads((root / "models/stance/polarity.toml").read_text())
    focus = tomllib.loads((root / "models/focus/security-cooperation.toml").read_text())["description"]

    label_vecs, _ = embed(tok, model, label_texts)
    target_vec, _ = embed(tok, model, [target], prefix="query: ")
    pol = {k: embed(tok, model, v["statements"])[0].mean(0) for k, v in polarity.items()}
    focus_vecs, _ = embed(tok, model, focus, prefix="query: ")

    articles = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    t0 = time.perf_counter()
    tokens = 0
    for a in articles:
        sents = sentences(a["text"])
        if not sents:
            continue
        vecs, n1 = embed(tok, model, sents)
        story, n2 = embed(tok, model, ["\n".join(sents)])
        tokens += n1 + n2
        topics = 1 / (1 + np.exp(-10 * (label_vecs @ story[0] - 0.8)))
        relevance = vecs @ target_vec[0]
        relevant = relevance > np.quantile(relevance, 0.5)
        stance = {k: float((vecs[relevant] @ p).mean()) for k, p in pol.items()}
        focus_score = (vecs @ focus_vecs.T).max(1)
        chosen = []
        for _ in range(min(3, len(sents))):
            redundancy = (vecs @ vecs[chosen].T).max(1) if chosen else np.zeros(len(sents))
            mmr = 0.7 * focus_score - 0.3 * redundancy
            mmr[chosen] = -np.inf
            chosen.append(int(mmr.argmax()))
        _ = (label_ids[int(topics.argmax())], max(stance, key=stance.get), sorted(chosen))
    wall = time.perf_counter() - t0
    return {"articles": len(articles), "wall_s": wall, "articles_per_s": len(articles) / wall,
            "tokens_per_article": tokens / len(articles)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--texts", type=Path)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok, model = load(args.model)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.texts:
        result["encoder"] = bench_encoder(tok, model, json.loads(args.texts.read_text()))
    if args.corpus:
        result["pipeline"] = bench_pipeline(tok, model, Path(__file__).resolve().parents[2], args.corpus)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

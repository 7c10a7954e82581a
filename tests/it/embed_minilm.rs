//! The optional `minilm` embedder. Without the cargo feature: `embedder: minilm` is a clear
//! configuration error. With it: set-up errors, and (when the model folder named by
//! `RECAGENT_MINILM_DIR` exists) the vectors themselves.

use std::path::PathBuf;

use recagent::config::{ConfigError, SimConfig};
use recagent::embed::{from_params, EmbedError};
use recagent::memory::MemoryParams;

fn parse(text: &str) -> Result<SimConfig, ConfigError> {
    SimConfig::from_yaml(text, "run.yaml", PathBuf::from("."))
}

fn minilm_params(dir: Option<PathBuf>) -> MemoryParams {
    MemoryParams {
        embedder: "minilm".into(),
        embed_dim: 384,
        embed_model_dir: dir,
        ..MemoryParams::default()
    }
}

#[cfg(not(feature = "minilm"))]
#[test]
fn minilm_without_the_feature_is_a_clear_config_error() {
    let e = parse("memory:\n  embedder: minilm\n  embed_dim: 384\n  embed_model_dir: /models/m\n")
        .unwrap_err();
    let ConfigError::Invalid { key, message, .. } = &e else {
        panic!("not an invalid-value error: {e}");
    };
    assert_eq!(key, "memory.embedder");
    assert!(
        message.contains("without the `minilm` feature")
            && message.contains("cargo build --release --features minilm"),
        "{message}"
    );
    let set = |k: &str, v: &str| (k.to_string(), v.to_string());
    let e = parse("seed: 1\n")
        .unwrap()
        .with_overrides(&[
            set("memory.embedder", "minilm"),
            set("memory.embed_dim", "384"),
            set("memory.embed_model_dir", "/models/m"),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`memory.embedder`") && e.contains("--features minilm"),
        "{e}"
    );
    // Unvalidated parameters reach the factory: an error as well, never a panic.
    let out = tempfile::tempdir().unwrap();
    let err = from_params(&minilm_params(Some("/models/m".into())), out.path())
        .err()
        .expect("minilm cannot be built without the feature");
    assert!(matches!(err, EmbedError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("--features minilm"), "{err}");
}

#[cfg(feature = "minilm")]
mod with_feature {
    use std::sync::{Arc, OnceLock};

    use recagent::embed::minilm::{MiniLmEmbedder, MINILM_DIM};
    use recagent::embed::{dot, Embedder, HashEmbedder};

    use super::*;

    #[test]
    fn config_checks_dimension_and_folder() {
        let e = parse("memory:\n  embedder: minilm\n  embed_model_dir: /m\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`memory.embed_dim`") && e.contains("384"), "{e}");
        let e = parse("memory:\n  embedder: minilm\n  embed_dim: 384\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`memory.embed_model_dir`"), "{e}");
        let c =
            parse("memory:\n  embedder: minilm\n  embed_dim: 384\n  embed_model_dir: m\n").unwrap();
        assert_eq!(c.memory.embed_model_dir, Some(PathBuf::from("m")));
        // The command line reaches the new keys too.
        let set = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = parse("seed: 1\n")
            .unwrap()
            .with_overrides(&[
                set("memory.embedder", "minilm"),
                set("memory.embed_dim", "384"),
                set("memory.embed_model_dir", "/models/m"),
                set("memory.embed_batch_size", "8"),
            ])
            .unwrap();
        assert_eq!(c.memory.embed_model_dir, Some(PathBuf::from("/models/m")));
        assert_eq!(c.memory.embed_batch_size, 8);
        let out = tempfile::tempdir().unwrap();
        let err = from_params(&minilm_params(None), out.path())
            .err()
            .expect("no folder");
        assert!(err.to_string().contains("embed_model_dir"), "{err}");
    }

    #[test]
    fn a_missing_model_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = MiniLmEmbedder::load(dir.path()).unwrap_err();
        match &err {
            EmbedError::MissingModelFile { dir: d, file } => {
                assert_eq!((d.as_path(), file.as_str()), (dir.path(), "tokenizer.json"));
            }
            other => panic!("wrong error: {other}"),
        }
        assert!(err.to_string().contains("missing tokenizer.json"), "{err}");
        // All three present but garbage: a typed error naming the file, no panic.
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), "xx").unwrap();
        let err = MiniLmEmbedder::load(dir.path()).unwrap_err();
        assert!(
            matches!(&err, EmbedError::Model { model, .. } if model.ends_with("config.json")),
            "{err}"
        );
        let out = tempfile::tempdir().unwrap();
        let err = from_params(&minilm_params(Some(out.path().join("none"))), out.path())
            .err()
            .expect("missing folder");
        assert!(err.to_string().contains("missing config.json"), "{err}");
    }

    /// The model from `RECAGENT_MINILM_DIR`, loaded once per test binary; `None` (with a note)
    /// when the variable is unset or the folder incomplete.
    fn model() -> Option<Arc<MiniLmEmbedder>> {
        static M: OnceLock<Option<Arc<MiniLmEmbedder>>> = OnceLock::new();
        M.get_or_init(|| {
            let Some(dir) = std::env::var_os("RECAGENT_MINILM_DIR").map(PathBuf::from) else {
                eprintln!("SKIPPED: RECAGENT_MINILM_DIR is not set (scripts/get-minilm.sh DIR)");
                return None;
            };
            if !dir.join("model.safetensors").is_file() {
                eprintln!(
                    "SKIPPED: no model in {} (scripts/get-minilm.sh DIR)",
                    dir.display()
                );
                return None;
            }
            Some(Arc::new(MiniLmEmbedder::load(&dir).expect("model loads")))
        })
        .clone()
    }

    const TOY_STORY: &str = "Toy Story. Animation, Children's, Comedy. Toy Story is a \
        computer-animated comedy film that tells the story of a group of toys belonging to a \
        young boy named Andy.";
    const OUTBREAK: &str = "Outbreak. Action, Drama, Thriller. Outbreak is a movie about a deadly \
        virus that spreads from a monkey to humans in a small town in California.";
    const QUERY: &str = "a funny movie about a talking toy cowboy";

    #[test]
    fn minilm_vectors_are_unit_384_and_repeatable() {
        let Some(m) = model() else { return };
        assert_eq!(m.dim(), MINILM_DIM);
        assert!(m.id().starts_with("minilm-"), "{}", m.id());
        let texts = [QUERY, TOY_STORY, OUTBREAK, "", "   ", QUERY];
        let v = m.embed_batch(&texts).unwrap();
        assert_eq!(v.len(), texts.len());
        for (t, x) in texts.iter().zip(&v) {
            assert_eq!(x.len(), 384);
            let n = dot(x, x);
            if t.trim().is_empty() {
                assert!(
                    x.iter().all(|a| *a == 0.0),
                    "empty text gives the zero vector"
                );
            } else {
                assert!((n - 1.0).abs() < 1e-5, "{t:?}: squared norm {n}");
            }
        }
        // Identical text, same batch and another call: identical bits.
        assert_eq!(v[0], v[5]);
        assert_eq!(m.embed_batch(&texts).unwrap(), v);
        // Alone (no padding) vs beside a longer text: equal up to float rounding.
        let alone = &m.embed_batch(&[QUERY]).unwrap()[0];
        let diff = alone
            .iter()
            .zip(&v[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "max |difference| {diff}");
    }

    #[test]
    fn minilm_puts_a_paraphrase_closer_than_an_unrelated_text() {
        let Some(m) = model() else { return };
        let v = m.embed_batch(&[QUERY, TOY_STORY, OUTBREAK]).unwrap();
        let (toy, other) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
        eprintln!("minilm: cos(query, Toy Story) = {toy:.3}, cos(query, Outbreak) = {other:.3}");
        assert!(toy > 0.35, "paraphrase similarity {toy}");
        assert!(toy > other + 0.2, "{toy} vs {other}");
        // The hashing embedder shares only the word "toy" between query and description.
        let h = HashEmbedder::default();
        let hv = h.embed_batch(&[QUERY, TOY_STORY]).unwrap();
        assert!(dot(&hv[0], &hv[1]) < toy, "minilm beats word overlap here");
    }

    #[test]
    fn from_params_builds_minilm_from_the_folder() {
        if model().is_none() {
            return;
        }
        let dir = PathBuf::from(std::env::var_os("RECAGENT_MINILM_DIR").unwrap());
        let out = tempfile::tempdir().unwrap();
        let mut p = minilm_params(Some(dir));
        p.embed_batch_size = 2;
        let e = from_params(&p, out.path()).unwrap();
        assert_eq!(e.dim(), 384);
        // Batches of 2 give the same vectors as the shared model's batches of 32 (to rounding).
        let a = e.embed_batch(&[QUERY, TOY_STORY, OUTBREAK]).unwrap();
        let b = model()
            .unwrap()
            .embed_batch(&[QUERY, TOY_STORY, OUTBREAK])
            .unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!(dot(x, y) > 0.99999, "{}", dot(x, y));
        }
    }
}

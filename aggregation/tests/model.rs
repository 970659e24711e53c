//! Models through safetensors and their content hashes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use fedstake_aggregation::{Model, ModelError, ModelLayout, TensorSpec};

fn layout() -> ModelLayout {
    ModelLayout::new(vec![
        TensorSpec::new("layers.1.weight", [2, 3]),
        TensorSpec::new("layers.1.bias", [2]),
        TensorSpec::new("layers.0.weight", [3, 1]),
    ])
    .unwrap()
}

fn model() -> Model {
    let params: Vec<f32> = (0..11).map(|i| i as f32 * 0.5 - 2.0).collect();
    Model::new(layout(), params).unwrap()
}

#[test]
fn safetensors_round_trip_keeps_layout_order_and_values() {
    let model = model();
    let bytes = model.to_safetensors().unwrap();
    let back = Model::from_safetensors(&bytes, None).unwrap();
    assert_eq!(back, model);
    assert_eq!(back.tensor("layers.1.bias").unwrap(), &[1.0, 1.5]);
    let checked = Model::from_safetensors(&bytes, Some(&layout())).unwrap();
    assert_eq!(checked, model);
}

#[test]
fn file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    model().save(&path).unwrap();
    assert_eq!(Model::load(&path, Some(&layout())).unwrap(), model());
}

#[test]
fn layout_mismatch_is_reported() {
    let bytes = model().to_safetensors().unwrap();
    let other = ModelLayout::new(vec![
        TensorSpec::new("layers.1.weight", [3, 2]),
        TensorSpec::new("layers.1.bias", [2]),
        TensorSpec::new("layers.0.weight", [3, 1]),
    ])
    .unwrap();
    let err = Model::from_safetensors(&bytes, Some(&other)).unwrap_err();
    assert!(
        matches!(err, ModelError::LayoutMismatch(ref m) if m.contains("layers.1.weight")),
        "{err}"
    );

    let missing = ModelLayout::new(vec![TensorSpec::new("head.weight", [2, 3])]).unwrap();
    let err = Model::from_safetensors(&bytes, Some(&missing)).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::LayoutMismatch(_) | ModelError::MissingTensor(_)
        ),
        "{err}"
    );

    let err = Model::new(layout(), vec![0.0; 10]).unwrap_err();
    assert!(matches!(
        err,
        ModelError::LengthMismatch {
            expected: 11,
            found: 10
        }
    ));
}

#[test]
fn garbage_is_rejected_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, b"not a model").unwrap();
    let err = Model::load(&path, None).unwrap_err();
    assert!(err.to_string().contains("bad.safetensors"), "{err}");
    assert!(matches!(err, ModelError::InFile { .. }));
}

#[test]
fn duplicate_names_are_rejected() {
    let err = ModelLayout::new(vec![TensorSpec::new("w", [1]), TensorSpec::new("w", [2])]);
    assert!(matches!(err, Err(ModelError::InvalidLayout(_))));
}

#[test]
fn content_hash_depends_on_values_names_and_shapes() {
    let base = model();
    let hash = base.content_hash();
    assert_eq!(hash, model().content_hash());

    let mut changed = model();
    changed.params_mut()[3] += 1e-6;
    assert_ne!(changed.content_hash(), hash);

    let renamed = ModelLayout::new(vec![
        TensorSpec::new("layers.1.weight", [2, 3]),
        TensorSpec::new("layers.1.b", [2]),
        TensorSpec::new("layers.0.weight", [3, 1]),
    ])
    .unwrap();
    assert_ne!(
        Model::new(renamed, base.params().to_vec())
            .unwrap()
            .content_hash(),
        hash
    );

    let reshaped = ModelLayout::new(vec![
        TensorSpec::new("layers.1.weight", [3, 2]),
        TensorSpec::new("layers.1.bias", [2]),
        TensorSpec::new("layers.0.weight", [3, 1]),
    ])
    .unwrap();
    assert_ne!(
        Model::new(reshaped, base.params().to_vec())
            .unwrap()
            .content_hash(),
        hash
    );
    assert_eq!(base.content_hash_hex().len(), 64);
}

mod hostile_bytes {
    //! A model file is what a coordinator sends every client (and what a
    //! user points a command at): random bytes and mutations of a valid file
    //! (bits flipped, cut short, bytes inserted, a shape inflated) never
    //! panic, and what is accepted against a layout has exactly its
    //! parameters. `PROPTEST_CASES` raises the number of cases.
    use super::*;
    use proptest::prelude::*;

    fn file() -> Vec<u8> {
        model().to_safetensors().unwrap()
    }

    /// The file with `at` in its JSON header replaced by `with` (same
    /// length not required: the header length prefix is rewritten).
    fn with_header_edit(bytes: &[u8], at: &str, with: &str) -> Vec<u8> {
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + length]).unwrap();
        let header = header.replacen(at, with, 1);
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&bytes[8 + length..]);
        out
    }

    fn accepted_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
        let _ = Model::from_safetensors(bytes, None);
        if let Ok(model) = Model::from_safetensors(bytes, Some(&layout())) {
            prop_assert_eq!(model.params().len(), layout().num_params());
        }
        Ok(())
    }

    #[test]
    fn huge_shapes_are_refused_not_overflowed() {
        for shape in ["[2,3]", "[2]"] {
            for huge in ["[4294967296,4294967296]", "[18446744073709551615,2]", "[0]"] {
                let bytes = with_header_edit(&file(), shape, huge);
                assert!(Model::from_safetensors(&bytes, None).is_err(), "{huge}");
                assert!(
                    Model::from_safetensors(&bytes, Some(&layout())).is_err(),
                    "{huge}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
        ))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            accepted_consistently(&bytes)?;
        }

        #[test]
        fn mutated_files_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            insert in proptest::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..12))),
        ) {
            let mut bytes = file();
            for (at, bit) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            if let Some((at, inserted)) = insert {
                let i = at.index(bytes.len());
                bytes.splice(i..i, inserted);
            }
            if let Some(at) = cut {
                let i = at.index(bytes.len());
                bytes.truncate(i);
            }
            accepted_consistently(&bytes)?;
        }
    }
}

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

//! `fedstake task ...`.

use std::path::Path;

use fedstake_protocol::spec::TaskSpec;

/// Validates a task spec and prints what it fixes.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    let spec = TaskSpec::load(path)?;
    println!("{}: valid", path.display());
    println!("  name          {}", spec.name);
    println!("  spec hash     {}", hex::encode(spec.spec_hash()));
    let params = spec
        .model
        .parameter_count(spec.data.features, spec.data.classes)
        .map_or_else(
            || "set by the TorchScript file".to_string(),
            |n| n.to_string(),
        );
    println!(
        "  model         {} ({params} parameters)",
        spec.model.kind()
    );
    println!(
        "  data          {} features, {} classes",
        spec.data.features, spec.data.classes
    );
    println!("  rounds        {}", spec.rounds);
    println!(
        "  cohort        {} (at least {})",
        spec.cohort.size, spec.cohort.min
    );
    println!("  privacy       {}", spec.privacy.mode());
    println!(
        "  update bound  L2 <= {}, {} fractional bits",
        spec.update.clip_norm, spec.update.fractional_bits
    );
    Ok(())
}

//! Erased users and older models: before a model serves (publish, a rollout's candidate, a
//! rollback), the users erased after it was built go (back) into the regions' erased sets.

use cluster_config::ClusterConfig;

use crate::ingest;

/// Before a model may serve in `regions` (a publish, a rollout's candidate, a rollback): put
/// the users erased after what it honours (`through_unix`, from its manifest) back into those
/// regions' erased sets, so nodes keep them out of answers while it serves. A region whose
/// Redis cannot be reached stops the command: serving the model there could bring them back.
pub(crate) async fn protect_before_serving(
    c: &ClusterConfig,
    primary: &store::Bucket,
    regions: &[String],
    version: &str,
    through_unix: i64,
) -> anyhow::Result<()> {
    let erasures = ingest::read_tombstones(primary).await?;
    let users = ingest::not_honoured(&erasures, through_unix);
    if users.is_empty() {
        return Ok(());
    }
    for region in regions {
        let redis = c.region(region)?.redis_url.to_string();
        ingest::protect(region, &redis, &users).await.map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "{version} was built before {} erasure(s); they cannot be protected in {region}, so it does not serve there",
                users.len()
            ))
        })?;
    }
    eprintln!(
        "{version} was built before {} erasure(s): those users stay in the erased sets of {} until a version honouring them serves",
        users.len(),
        regions.join(", ")
    );
    Ok(())
}

/// What the model in `dir` honours (unix seconds; 0: no erasures).
pub(crate) fn honours_local(dir: &std::path::Path) -> anyhow::Result<i64> {
    let path = dir.join(model::manifest::MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let m = model::manifest::Manifest::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(m.erasures.map_or(0, |e| e.through_unix))
}

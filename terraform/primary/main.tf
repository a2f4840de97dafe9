provider "aws" {
  region = local.primary_cloud_region

  default_tags {
    tags = merge({ Project = "georec", GeorecRegion = "primary", ManagedBy = "terraform" }, var.tags)
  }
}

module "primary" {
  source = "../modules/primary"

  bucket_name   = coalesce(var.bucket_name, local.primary_bucket)
  bucket_prefix = local.primary_prefix
  cloud_region  = local.primary_cloud_region

  regions = {
    for name, r in local.regions : name => {
      cloud_region = r.cloud_region
      bucket       = lookup(var.region_bucket_names, name, r.bucket)
      kms_key_arn  = lookup(var.region_kms_key_arns, name, null)
    }
  }

  model_sync_trusted_principal_arns = var.model_sync_trusted_principal_arns
  enable_replication                = var.enable_replication
  replication_time_control          = var.replication_time_control
  noncurrent_version_days           = var.noncurrent_version_days
}

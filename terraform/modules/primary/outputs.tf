output "bucket_name" {
  description = "Primary model bucket."
  value       = module.models.bucket
}

output "bucket_arn" {
  description = "ARN of the primary model bucket."
  value       = module.models.arn
}

output "kms_key_arn" {
  description = "KMS key of the primary bucket."
  value       = aws_kms_key.this.arn
}

output "model_sync_role_arn" {
  description = "Role model-sync runs as (assume it, or give it to an ECS task); put it in every region's writer_role_arns to forbid other writers."
  value       = aws_iam_role.model_sync.arn
}

output "replication_role_arn" {
  description = "Role of S3 replication (null when replication is off); also a writer of the region buckets."
  value       = var.enable_replication ? aws_iam_role.replication[0].arn : null
}

output "publish_replication_mode" {
  description = "The --replication flag of `model-sync publish` matching this stack."
  value       = var.enable_replication ? "external" : "copy"
}

output "model_sync_environment" {
  description = "Environment for model-sync (GEOREC__* overrides of regions.toml) pointing it at the AWS buckets."
  value = merge(
    {
      GEOREC__PRIMARY__ENDPOINT     = "https://s3.${var.cloud_region}.amazonaws.com"
      GEOREC__PRIMARY__BUCKET       = module.models.bucket
      GEOREC__PRIMARY__PREFIX       = var.bucket_prefix
      GEOREC__PRIMARY__CLOUD_REGION = var.cloud_region
    },
    merge([
      for name, r in var.regions : {
        "GEOREC__REGIONS__${upper(replace(name, "-", "_"))}__S3__ENDPOINT" = "https://s3.${r.cloud_region}.amazonaws.com"
        "GEOREC__REGIONS__${upper(replace(name, "-", "_"))}__S3__BUCKET"   = r.bucket
        "GEOREC__REGIONS__${upper(replace(name, "-", "_"))}__S3__PREFIX"   = var.bucket_prefix
        "GEOREC__REGIONS__${upper(replace(name, "-", "_"))}__CLOUD_REGION" = r.cloud_region
      }
    ]...),
  )
}

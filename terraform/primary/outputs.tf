output "bucket_name" {
  description = "Primary model bucket."
  value       = module.primary.bucket_name
}

output "model_sync_role_arn" {
  description = "Role to run model-sync as."
  value       = module.primary.model_sync_role_arn
}

output "replication_role_arn" {
  description = "Role of S3 replication (null when off)."
  value       = module.primary.replication_role_arn
}

output "publish_replication_mode" {
  description = "--replication value for `model-sync publish` with this stack."
  value       = module.primary.publish_replication_mode
}

output "model_sync_environment" {
  description = "GEOREC__* variables that point model-sync at the AWS buckets (see terraform/README.md)."
  value       = module.primary.model_sync_environment
}

variable "bucket_name" {
  description = "Primary model bucket, where model-sync publishes first (regions.toml primary.bucket; S3 names are global)."
  type        = string
}

variable "bucket_prefix" {
  description = "Key prefix of georec objects (regions.toml primary.prefix; the region buckets use the same)."
  type        = string
  default     = "georec/"
}

variable "cloud_region" {
  description = "AWS region of the primary bucket (regions.toml primary.cloud_region); must be the provider's region."
  type        = string
}

variable "regions" {
  description = "Every georec region: its AWS region, its model bucket, and (once its stack exists) its KMS key ARN (the region stack's kms_key_arn output). model-sync may write these buckets; replication targets them."
  type = map(object({
    cloud_region = string
    bucket       = string
    kms_key_arn  = optional(string)
  }))
}

variable "model_sync_role_name" {
  description = "Name of the IAM role model-sync runs as (publish, status, rollback, gc)."
  type        = string
  default     = "georec-model-sync"
}

variable "model_sync_trusted_principal_arns" {
  description = "IAM principals allowed to assume the model-sync role, e.g. the CI role that builds and publishes models. ECS tasks of this account may always assume it."
  type        = list(string)
  default     = []
}

variable "enable_replication" {
  description = "Replicate <prefix>models/ from the primary bucket to every region bucket with S3 replication; then publish with `model-sync publish --replication external`. Needs every region's kms_key_arn."
  type        = bool
  default     = false
}

variable "replication_time_control" {
  description = "With replication: S3 Replication Time Control (15-minute SLA and replication metrics, extra cost)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days noncurrent object versions are kept before they expire."
  type        = number
  default     = 30
}

variable "access_log_days" {
  description = "Days S3 access logs of the primary bucket are kept."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

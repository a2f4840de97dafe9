variable "bucket_name" {
  description = "Primary model bucket; null uses regions.toml's primary.bucket. Bucket names are global: a real deployment usually needs its own."
  type        = string
  default     = null
}

variable "region_bucket_names" {
  description = "Model bucket of each region when it differs from regions.toml (the same names given to the region stacks' bucket_name)."
  type        = map(string)
  default     = {}
}

variable "region_kms_key_arns" {
  description = "KMS key of each region bucket (each region stack's kms_key_arn output). Needed for replication; with all of them known, model-sync's KMS permission names exactly these keys."
  type        = map(string)
  default     = {}
}

variable "model_sync_trusted_principal_arns" {
  description = "Principals allowed to assume the model-sync role (e.g. the CI role that builds and publishes models)."
  type        = list(string)
  default     = []
}

variable "enable_replication" {
  description = "S3 replication of <prefix>models/ from the primary to every region bucket; then publish with `model-sync publish --replication external`."
  type        = bool
  default     = false
}

variable "replication_time_control" {
  description = "S3 Replication Time Control on the replication rules (15-minute SLA, metrics; extra cost)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days deleted or replaced objects stay recoverable in the primary bucket."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

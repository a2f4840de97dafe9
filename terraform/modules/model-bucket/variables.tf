variable "name" {
  description = "Bucket name (regions.toml `s3.bucket` or `primary.bucket`)."
  type        = string
}

variable "prefix" {
  description = "Key prefix of georec objects (regions.toml `prefix`, e.g. \"georec/\")."
  type        = string
  default     = "georec/"
}

variable "kms_key_arn" {
  description = "KMS key for default encryption (SSE-KMS with bucket keys)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days noncurrent object versions (deleted by `model-sync gc` or overwritten) are kept before S3 expires them."
  type        = number
  default     = 30
}

variable "access_log_bucket" {
  description = "Bucket receiving the S3 server access logs (under s3/<name>/)."
  type        = string
}

variable "writer_role_arns" {
  description = "If not empty, only these principals may write or delete objects (bucket policy deny for everyone else)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "zone" {
  description = "Residency zone whose regional model this task builds, e.g. \"eu\" (model-sync run --zone)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.zone))
    error_message = "Zone names are lower-case letters, digits and '-' (as in regions.toml)."
  }
}

variable "region" {
  description = "georec region of the stack running the task: the zone's first region by name, whose bucket holds the zone's home store."
  type        = string
}

variable "cloud_region" {
  description = "AWS region of that georec region."
  type        = string
}

variable "image" {
  description = "georec container image (the same image as the nodes). Pull permission is granted for ECR images."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster the task runs in (the region module's cluster_arn)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the task."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the task (no public IP): routes to S3, ECR, CloudWatch Logs and Secrets Manager, and to the region's Redis and node load balancer."
  type        = list(string)
}

variable "redis_security_group_id" {
  description = "Security group of the region's Redis; the task gets egress to it and it gets ingress from the task on 6379."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the region's model bucket: the zone's home store (under <prefix>zone-<zone>/) and where the regional model is published."
  type        = string
}

variable "bucket_prefix" {
  description = "georec prefix of the region bucket and of the primary bucket (regions.toml s3.prefix, e.g. \"georec/\")."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the region: encrypts its bucket (read and written by the task) and the task's log group."
  type        = string
}

variable "primary_bucket" {
  description = "Name of the primary bucket, read only: the shared events (<prefix>events/) and erasure records (<prefix>erasures/)."
  type        = string
}

variable "primary_cloud_region" {
  description = "AWS region of the primary bucket."
  type        = string
}

variable "primary_kms_key_arn" {
  description = "KMS key of the primary bucket (the primary stack's kms_key_arn); null allows decrypting with any key of the account in the primary's AWS region, through S3 only."
  type        = string
  default     = null
}

variable "environment" {
  description = "Environment of the container: the GEOREC__* overrides that point model-sync at the zone's regions (bucket, Redis, node URLs, residency) and the primary bucket."
  type        = map(string)
}

variable "admin_token_secret_arn" {
  description = "Secrets Manager secret with GEOREC_ADMIN_TOKEN (model-sync sends missed erasures to the zone's nodes with it); null: no erasure propagation."
  type        = string
  default     = null
}

variable "admin_token_kms_key_arn" {
  description = "Customer managed KMS key of the admin token secret, if it has one."
  type        = string
  default     = null
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression of the runs, e.g. \"rate(1 hour)\" or \"cron(15 * * * ? *)\"."
  type        = string
  default     = "rate(1 hour)"
}

variable "schedule_timezone" {
  description = "Time zone of a cron schedule expression."
  type        = string
  default     = "UTC"
}

variable "enabled" {
  description = "Whether the schedule starts tasks (false keeps everything but pauses the runs)."
  type        = bool
  default     = true
}

variable "extra_args" {
  description = "More arguments of `model-sync run --once --zone <zone> --work-dir <dir>`, e.g. [\"--max-ndcg-drop\", \"0.02\"]. Without --data the model is built from the events alone."
  type        = list(string)
  default     = []
}

variable "cpu" {
  description = "Fargate CPU units of the task."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Fargate memory (MiB) of the task: room for the events, the candidate model and the serving one it is compared with."
  type        = number
  default     = 8192
}

variable "ephemeral_storage_gib" {
  description = "Task storage (GiB, 21-200) holding the work directory under /tmp."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the task's logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

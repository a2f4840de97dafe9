# One georec region: its model bucket, its Redis, and its region-node service.
#
#   KMS key ........ encrypts the bucket, Redis, and every log group of the region
#   S3 ............. model bucket (modules/model-bucket: versioned, SSE-KMS, public access
#                    blocked, TLS only, lifecycle for old model versions) + access-log bucket
#   ElastiCache .... Redis replication group (Multi-AZ), maxmemory policy from a parameter group
#   ECS Fargate .... cluster + region-node service behind an internal HTTPS load balancer
#                    (container liveness check, load balancer readiness check, autoscaling)
#   IAM ............ node tasks may only read this region's bucket (model-sync's writer role
#                    lives in the primary stack)

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # GEOREC__REGIONS__US_WEST__... for region "us-west".
  env_key = "GEOREC__REGIONS__${upper(replace(var.name, "-", "_"))}"
  prefix  = "georec-${var.name}"

  redis_scheme = var.redis_transit_encryption ? "rediss" : "redis"
  redis_url    = "${local.redis_scheme}://${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"

  node_environment = merge(
    {
      "${local.env_key}__LISTEN"       = "0.0.0.0:${var.node_port}"
      "${local.env_key}__REDIS_URL"    = local.redis_url
      "${local.env_key}__CLOUD_REGION" = var.cloud_region
      # An explicit regional endpoint (path-style requests): the config file's local
      # endpoint must be replaced, and an override can set a key but not remove it.
      "${local.env_key}__S3__ENDPOINT" = "https://s3.${var.cloud_region}.amazonaws.com"
      "${local.env_key}__S3__BUCKET"   = module.models.bucket
      "${local.env_key}__S3__PREFIX"   = var.bucket_prefix
      AWS_REGION                       = var.cloud_region
      GEOREC_LOG_JSON                  = "true"
      GEOREC_HEALTHCHECK_URL           = "http://127.0.0.1:${var.node_port}/health/ready"
      RUST_LOG                         = "info"
    },
    var.extra_environment,
  )
}

# ---------------------------------------------------------------------------- KMS

resource "aws_kms_key" "this" {
  description             = "georec ${var.name}: model bucket, Redis and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # IAM policies of this account decide who uses the key (node role: decrypt;
        # model-sync and replication roles: encrypt), as with any key.
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsOfThisRegion"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.cloud_region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.cloud_region}:${local.account_id}:log-group:*"
          }
        }
      },
    ]
  })

  lifecycle {
    precondition {
      condition     = data.aws_region.current.id == var.cloud_region
      error_message = "The aws provider's region must be cloud_region (${var.cloud_region}) for georec region ${var.name}."
    }
  }

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.this.key_id
}

# ---------------------------------------------------------------------------- buckets

module "logs" {
  source          = "../log-bucket"
  name            = "${local.prefix}-logs-${local.account_id}"
  expiration_days = var.access_log_days
  tags            = var.tags
}

module "models" {
  source                  = "../model-bucket"
  name                    = var.bucket_name
  prefix                  = var.bucket_prefix
  kms_key_arn             = aws_kms_key.this.arn
  noncurrent_version_days = var.noncurrent_version_days
  access_log_bucket       = module.logs.bucket
  writer_role_arns        = var.writer_role_arns
  tags                    = var.tags
}

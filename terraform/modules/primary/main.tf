# The primary store and the identity that publishes models:
#   - KMS key and primary model bucket (modules/model-bucket), with an access-log bucket;
#   - the model-sync role: read/write on the primary and every region bucket, nothing else;
#   - optionally S3 replication primary -> every region bucket for <prefix>models/ (the
#     pointers stay model-sync's: it flips them after verifying each replica).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  region_bucket_arns = { for name, r in var.regions : name => "arn:${local.partition}:s3:::${r.bucket}" }
  all_bucket_arns    = concat([module.models.arn], values(local.region_bucket_arns))
  region_key_arns    = [for r in values(var.regions) : r.kms_key_arn if r.kms_key_arn != null]
  all_keys_known     = length(local.region_key_arns) == length(var.regions)
  s3_services        = distinct(concat(["s3.${var.cloud_region}.amazonaws.com"], [for r in values(var.regions) : "s3.${r.cloud_region}.amazonaws.com"]))
}

# ---------------------------------------------------------------------------- KMS + buckets

resource "aws_kms_key" "this" {
  description             = "georec primary model bucket"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })

  lifecycle {
    precondition {
      condition     = data.aws_region.current.id == var.cloud_region
      error_message = "The aws provider's region must be the primary's cloud_region (${var.cloud_region})."
    }
    precondition {
      condition     = !var.enable_replication || local.all_keys_known
      error_message = "enable_replication needs regions[*].kms_key_arn of every region (apply the region stacks first)."
    }
  }

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/georec-primary"
  target_key_id = aws_kms_key.this.key_id
}

module "logs" {
  source                   = "../log-bucket"
  name                     = "georec-primary-logs-${local.account_id}"
  expiration_days          = var.access_log_days
  allow_load_balancer_logs = false
  tags                     = var.tags
}

module "models" {
  source                  = "../model-bucket"
  name                    = var.bucket_name
  prefix                  = var.bucket_prefix
  kms_key_arn             = aws_kms_key.this.arn
  noncurrent_version_days = var.noncurrent_version_days
  access_log_bucket       = module.logs.bucket
  tags                    = var.tags
}

# ---------------------------------------------------------------------------- model-sync role

data "aws_iam_policy_document" "model_sync_assume" {
  statement {
    sid     = "EcsTasks"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  dynamic "statement" {
    for_each = length(var.model_sync_trusted_principal_arns) == 0 ? [] : ["trusted"]
    content {
      sid     = "TrustedPublishers"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "AWS"
        identifiers = var.model_sync_trusted_principal_arns
      }
    }
  }
}

resource "aws_iam_role" "model_sync" {
  name                 = var.model_sync_role_name
  description          = "georec model-sync: publishes, verifies, rolls back and collects model versions"
  assume_role_policy   = data.aws_iam_policy_document.model_sync_assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

# publish: multipart upload to the primary, copy to regions, verify, flip pointers;
# status/rollback/gc: list, read, delete versions. Only the georec prefix of georec buckets.
data "aws_iam_policy_document" "model_sync" {
  statement {
    sid       = "ListGeorecBuckets"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation", "s3:GetBucketVersioning"]
    resources = local.all_bucket_arns
  }

  statement {
    sid = "PublishModels"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for arn in local.all_bucket_arns : "${arn}/${var.bucket_prefix}*"]
  }

  statement {
    sid       = "UseBucketKeys"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"]
    resources = local.all_keys_known ? concat([aws_kms_key.this.arn], local.region_key_arns) : ["arn:${local.partition}:kms:*:${local.account_id}:key/*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.s3_services
    }
  }
}

resource "aws_iam_role_policy" "model_sync" {
  name   = "publish-models"
  role   = aws_iam_role.model_sync.id
  policy = data.aws_iam_policy_document.model_sync.json
}

# ---------------------------------------------------------------------------- replication (optional)

data "aws_iam_policy_document" "replication_assume" {
  statement {
    sid     = "S3Replication"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  count              = var.enable_replication ? 1 : 0
  name               = "${var.model_sync_role_name}-replication"
  description        = "S3 replication of georec models from the primary bucket to the region buckets"
  assume_role_policy = data.aws_iam_policy_document.replication_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadSourceConfiguration"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [module.models.arn]
  }

  statement {
    sid       = "ReadSourceVersions"
    actions   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
    resources = ["${module.models.arn}/${var.bucket_prefix}models/*"]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    resources = [for arn in values(local.region_bucket_arns) : "${arn}/${var.bucket_prefix}models/*"]
  }

  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.cloud_region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(local.region_key_arns) == 0 ? [] : ["encrypt"]
    content {
      sid       = "EncryptReplicas"
      actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
      resources = local.region_key_arns
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  count  = var.enable_replication ? 1 : 0
  name   = "replicate-models"
  role   = aws_iam_role.replication[0].id
  policy = data.aws_iam_policy_document.replication.json
}

resource "aws_s3_bucket_replication_configuration" "this" {
  count  = var.enable_replication ? 1 : 0
  role   = aws_iam_role.replication[0].arn
  bucket = module.models.bucket

  dynamic "rule" {
    for_each = var.regions
    content {
      id       = "models-to-${rule.key}"
      priority = index(sort(keys(var.regions)), rule.key) + 1
      status   = "Enabled"

      # Versions only: each bucket's pointer (current.json) is model-sync's to flip.
      filter {
        prefix = "${var.bucket_prefix}models/"
      }

      delete_marker_replication {
        status = "Disabled"
      }

      source_selection_criteria {
        sse_kms_encrypted_objects {
          status = "Enabled"
        }
      }

      destination {
        bucket        = local.region_bucket_arns[rule.key]
        storage_class = "STANDARD"

        encryption_configuration {
          replica_kms_key_id = rule.value.kms_key_arn
        }

        dynamic "replication_time" {
          for_each = var.replication_time_control ? ["rtc"] : []
          content {
            status = "Enabled"
            time {
              minutes = 15
            }
          }
        }

        dynamic "metrics" {
          for_each = var.replication_time_control ? ["metrics"] : []
          content {
            status = "Enabled"
            event_threshold {
              minutes = 15
            }
          }
        }
      }
    }
  }
}

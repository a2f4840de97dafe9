# The regional model of one residency zone: `model-sync run --once --zone <zone>` as an ECS
# Fargate task started on a schedule (EventBridge Scheduler), in the stack of the zone's first
# region, whose bucket holds the zone's home store (<prefix>zone-<zone>/). Each run drains the
# zone's Redis streams into the home store, reads the shared events and erasure records of
# the primary bucket (read only), builds a candidate and publishes it to the zone's regions.
#
#   log group ....... KMS-encrypted with the region's key
#   task role ....... read/write <prefix>* of the region bucket (home store + published models),
#                     read <prefix>events/ and <prefix>erasures/ of the primary bucket
#   security group .. out: HTTPS (S3, ECR, logs, secrets, the zone's node load balancers) and
#                     the region's Redis; no ingress
#   schedule ........ EventBridge Scheduler -> ecs:RunTask, with its own role

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  name       = "georec-${var.region}-zone-${var.zone}-retrain"

  primary_bucket_arn = "arn:${local.partition}:s3:::${var.primary_bucket}"
  primary_key_arns   = var.primary_kms_key_arn == null ? ["arn:${local.partition}:kms:${var.primary_cloud_region}:${local.account_id}:key/*"] : [var.primary_kms_key_arn]

  # ECR image -> repository ARN the execution role may pull from (none for other registries).
  ecr_match          = regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com/([^:@]+)", var.image)
  ecr_repository_arn = length(local.ecr_match) > 0 ? "arn:${local.partition}:ecr:${local.ecr_match[0][1]}:${local.ecr_match[0][0]}:repository/${local.ecr_match[0][2]}" : null

  container_name = "model-sync"
  work_dir       = "/tmp/georec-retrain-${var.zone}"
  command        = concat(["model-sync", "run", "--once", "--zone", var.zone, "--work-dir", local.work_dir], var.extra_args)
  secrets        = var.admin_token_secret_arn == null ? {} : { GEOREC_ADMIN_TOKEN = var.admin_token_secret_arn }
}

# ---------------------------------------------------------------------------- logs

resource "aws_cloudwatch_log_group" "this" {
  name              = "/georec/${var.region}/zone-${var.zone}-retrain"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# ---------------------------------------------------------------------------- task roles

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
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
}

# Execution role: pull the image, write the log group, read the admin token.
resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.ecr_repository_arn == null ? [] : [local.ecr_repository_arn]
    content {
      sid       = "PullImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    # GetAuthorizationToken has no resource-level permissions: it can only be granted on "*".
    for_each = local.ecr_repository_arn == null ? [] : ["ecr-auth"]
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.admin_token_secret_arn == null ? [] : [var.admin_token_secret_arn]
    content {
      sid       = "ReadAdminToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.admin_token_kms_key_arn == null ? [] : [var.admin_token_kms_key_arn]
    content {
      sid       = "DecryptAdminToken"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: what model-sync itself may do.
resource "aws_iam_role" "task" {
  name               = "${local.name}-task"
  description        = "georec model-sync run --zone ${var.zone}: the zone's home store and regional model in ${var.region}'s bucket, the primary's shared events read only"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ListRegionBucket"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  # The home store (<prefix>zone-<zone>/: events, erasures, models, rollout records) and the
  # region's published models and pointer (<prefix>models/, <prefix>current.json).
  statement {
    sid = "ReadWriteRegionBucket"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.bucket_arn}/${var.bucket_prefix}*"]
  }

  statement {
    sid       = "UseRegionKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.cloud_region}.amazonaws.com"]
    }
  }

  # Shared events and erasure records: read, never written (nothing of the zone leaves it).
  statement {
    sid       = "ListSharedRecords"
    actions   = ["s3:ListBucket"]
    resources = [local.primary_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.bucket_prefix}events/*", "${var.bucket_prefix}erasures/*"]
    }
  }

  statement {
    sid       = "ReadSharedRecords"
    actions   = ["s3:GetObject"]
    resources = ["${local.primary_bucket_arn}/${var.bucket_prefix}events/*", "${local.primary_bucket_arn}/${var.bucket_prefix}erasures/*"]
  }

  statement {
    sid       = "DecryptSharedRecords"
    actions   = ["kms:Decrypt"]
    resources = local.primary_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.primary_cloud_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "zone-retrain"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---------------------------------------------------------------------------- network

resource "aws_security_group" "task" {
  #checkov:skip=CKV2_AWS_5:Attached to the tasks the schedule starts (aws_scheduler_schedule.this, target.ecs_parameters.network_configuration), an attachment checkov does not follow.
  name        = local.name
  description = "model-sync run --zone ${var.zone}: no ingress; out to AWS APIs, node load balancers and Redis"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = local.name })
}

# HTTPS out: S3, ECR, CloudWatch Logs, Secrets Manager and the zone's node load balancers
# (missed erasures are sent to the nodes).
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.task.id
  description       = "HTTPS to AWS APIs and the zone's node load balancers"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "redis" {
  security_group_id            = aws_security_group.task.id
  description                  = "Redis of georec ${var.region} (the zone's event stream)"
  referenced_security_group_id = var.redis_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_task" {
  security_group_id            = var.redis_security_group_id
  description                  = "Redis from model-sync run --zone ${var.zone}"
  referenced_security_group_id = aws_security_group.task.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

# ---------------------------------------------------------------------------- task definition

resource "aws_ecs_task_definition" "this" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  # The work directory lives on the task's storage; the root filesystem is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = var.image
      essential              = true
      command                = local.command
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = 30
      environment            = [for k in sort(keys(var.environment)) : { name = k, value = var.environment[k] }]
      secrets                = [for k in sort(keys(local.secrets)) : { name = k, valueFrom = local.secrets[k] }]
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }
      ]
      linuxParameters = {
        initProcessEnabled = true
        capabilities       = { drop = ["ALL"] }
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = var.cloud_region
          awslogs-stream-prefix = "zone-${var.zone}"
        }
      }
    }
  ])

  tags = var.tags
}

# ---------------------------------------------------------------------------- schedule

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    sid     = "SchedulerAssume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  description        = "EventBridge Scheduler: starts ${local.name} tasks"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunRetrainTask"
    actions   = ["ecs:RunTask"]
    resources = ["${aws_ecs_task_definition.this.arn_without_revision}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagStartedTask"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${var.cloud_region}:${local.account_id}:task/*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # The schedule's target is encrypted with the region's key.
  statement {
    sid       = "DecryptSchedule"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:scheduler:schedule:arn"
      values   = ["arn:${local.partition}:scheduler:${var.cloud_region}:${local.account_id}:schedule/default/${local.name}"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-retrain-task"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "this" {
  name                         = local.name
  group_name                   = "default"
  description                  = "georec: model-sync run --once --zone ${var.zone} (regional model of zone ${var.zone})"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.cluster_arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn     = aws_ecs_task_definition.this.arn
      task_count              = 1
      launch_type             = "FARGATE"
      platform_version        = "LATEST"
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.task.id]
        assign_public_ip = false
      }
    }

    # A run that cannot start is retried for a while; the next one starts on schedule anyway.
    retry_policy {
      maximum_event_age_in_seconds = 1800
      maximum_retry_attempts       = 3
    }
  }
}

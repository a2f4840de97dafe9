# The region-node service: ECS Fargate tasks behind an internal HTTPS load balancer.

resource "aws_cloudwatch_log_group" "exec" {
  name              = "/georec/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = local.prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.this.arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }

  tags = var.tags
}

# Least privilege for the nodes: read this region's bucket under the georec prefix.
# ListBucket lets a missing object answer 404 (no model yet) instead of 403.
data "aws_iam_policy_document" "node" {
  statement {
    sid       = "ListModelBucket"
    actions   = ["s3:ListBucket"]
    resources = [module.models.arn]
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = ["${module.models.arn}/${var.bucket_prefix}*"]
  }

  statement {
    sid       = "DecryptModels"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.cloud_region}.amazonaws.com"]
    }
  }
}

module "node" {
  source = "../service"

  name           = "${local.prefix}-node"
  cluster_arn    = aws_ecs_cluster.this.arn
  cluster_name   = aws_ecs_cluster.this.name
  image          = var.image
  command        = ["region-node", "--region", var.name]
  container_port = var.node_port
  environment    = local.node_environment
  secrets        = var.admin_token_secret_arn == null ? {} : { GEOREC_ADMIN_TOKEN = var.admin_token_secret_arn }

  secrets_kms_key_arns        = var.admin_token_kms_key_arn == null ? [] : [var.admin_token_kms_key_arn]
  container_health_check_path = "/health/live"
  target_health_check_path    = "/health/ready"
  task_policy_json            = data.aws_iam_policy_document.node.json

  cpu                 = var.node_cpu
  memory              = var.node_memory
  desired_count       = var.node_desired_count
  min_count           = var.node_min_count
  max_count           = var.node_max_count
  cpu_target_percent  = var.node_cpu_target_percent
  requests_per_target = var.node_requests_per_target

  vpc_id          = var.vpc_id
  task_subnet_ids = var.private_subnet_ids
  alb_subnet_ids  = var.private_subnet_ids
  internal        = true
  ingress_cidrs   = var.node_ingress_cidrs
  certificate_arn = var.certificate_arn
  ssl_policy      = var.ssl_policy

  alb_access_logs_bucket = module.logs.bucket
  deletion_protection    = var.deletion_protection
  kms_key_arn            = aws_kms_key.this.arn
  log_retention_days     = var.log_retention_days

  extra_task_egress = [
    {
      description       = "Redis of georec ${var.name}"
      port              = 6379
      security_group_id = aws_security_group.redis.id
    },
  ]

  tags = var.tags
}

resource "aws_route53_record" "node" {
  count   = var.dns_zone_id == null ? 0 : 1
  zone_id = var.dns_zone_id
  name    = var.node_hostname
  type    = "A"

  alias {
    name                   = module.node.alb_dns_name
    zone_id                = module.node.alb_zone_id
    evaluate_target_health = true
  }
}

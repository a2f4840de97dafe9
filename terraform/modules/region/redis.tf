# The region's Redis: answer cache (and later an event stream) of the region nodes.

resource "aws_security_group" "redis" {
  name        = "${local.prefix}-redis"
  description = "Redis of georec ${var.name}: reachable from the region's node tasks only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${local.prefix}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_nodes" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the region-node tasks"
  referenced_security_group_id = module.node.task_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_subnet_group" "this" {
  name        = "${local.prefix}-redis"
  description = "Private subnets of georec ${var.name}"
  subnet_ids  = var.private_subnet_ids
  tags        = var.tags
}

resource "aws_elasticache_parameter_group" "this" {
  name        = "${local.prefix}-redis7"
  family      = "redis7"
  description = "georec ${var.name}: evict by ${var.redis_maxmemory_policy} when full"

  parameter {
    name  = "maxmemory-policy"
    value = var.redis_maxmemory_policy
  }

  # Rehash on every command instead of 1 ms bursts every 100 ms (request latency).
  parameter {
    name  = "activerehashing"
    value = "no"
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "redis" {
  name              = "/georec/${var.name}/redis"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV_AWS_30:region-node's Redis client is built without TLS (redis crate without its tls features), so in-transit encryption would cut the nodes off their cache. Set redis_transit_encryption = true once it has TLS; until then Redis sits in private subnets and accepts the node tasks' security group only.
  #checkov:skip=CKV_AWS_31:An AUTH token requires in-transit encryption on ElastiCache (see CKV_AWS_30); access is limited by the security group to the node tasks.
  replication_group_id       = "${local.prefix}-cache"
  description                = "georec ${var.name} answer cache"
  engine                     = "redis"
  engine_version             = var.redis_engine_version
  node_type                  = var.redis_node_type
  num_cache_clusters         = var.redis_replicas
  port                       = 6379
  parameter_group_name       = aws_elasticache_parameter_group.this.name
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this.arn
  transit_encryption_enabled = var.redis_transit_encryption
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = var.redis_snapshot_retention_days
  snapshot_window            = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }

  tags = var.tags
}

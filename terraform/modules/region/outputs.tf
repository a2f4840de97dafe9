output "region" {
  description = "georec region name."
  value       = var.name
}

output "cloud_region" {
  description = "AWS region."
  value       = var.cloud_region
}

output "bucket_name" {
  description = "Model bucket of the region (model-sync: GEOREC__REGIONS__<NAME>__S3__BUCKET)."
  value       = module.models.bucket
}

output "bucket_arn" {
  description = "ARN of the model bucket (a replication destination of the primary stack)."
  value       = module.models.arn
}

output "kms_key_arn" {
  description = "KMS key of the region (replicas are encrypted with it; model-sync's role may use it)."
  value       = aws_kms_key.this.arn
}

output "s3_endpoint" {
  description = "S3 endpoint of the region (GEOREC__REGIONS__<NAME>__S3__ENDPOINT)."
  value       = "https://s3.${var.cloud_region}.amazonaws.com"
}

output "redis_url" {
  description = "URL of the region's Redis as the nodes use it."
  value       = local.redis_url
}

output "cluster_arn" {
  description = "ECS cluster of the region (the router service runs in it too)."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "node_url" {
  description = "Base URL routers use for this region's nodes (GEOREC__REGIONS__<NAME>__URLS of every router)."
  value       = "https://${var.node_hostname}"
}

output "node_alb_dns_name" {
  description = "DNS name of the internal node load balancer (target of node_hostname)."
  value       = module.node.alb_dns_name
}

output "node_alb_zone_id" {
  description = "Route 53 zone id of the node load balancer."
  value       = module.node.alb_zone_id
}

output "node_task_role_arn" {
  description = "Role of the node tasks (read-only on the model bucket)."
  value       = module.node.task_role_arn
}

output "log_bucket" {
  description = "Bucket with the region's load balancer and S3 access logs (the router's load balancer logs here too)."
  value       = module.logs.bucket
}

output "redis_security_group_id" {
  description = "Security group of the region's Redis (other tasks of the region, such as a zone's scheduled retrain, add their ingress rule to it)."
  value       = aws_security_group.redis.id
}

output "region" {
  description = "georec region of this stack."
  value       = local.region
}

output "cloud_region" {
  description = "AWS region of this stack."
  value       = local.cloud_region
}

output "bucket_name" {
  description = "Model bucket of the region."
  value       = module.region.bucket_name
}

output "kms_key_arn" {
  description = "KMS key of the region (input of the primary stack: regions[<region>].kms_key_arn)."
  value       = module.region.kms_key_arn
}

output "node_url" {
  description = "Base URL of the region's nodes (what every router uses)."
  value       = module.region.node_url
}

output "node_alb_dns_name" {
  description = "Internal load balancer of the nodes (target of node.<region>.<domain>)."
  value       = module.region.node_alb_dns_name
}

output "redis_url" {
  description = "Redis of the region as the nodes reach it."
  value       = module.region.redis_url
}

output "router_url" {
  description = "Regional URL of the router (null without a router)."
  value       = var.enable_router ? module.router[0].router_url : null
}

output "primary_stack_input" {
  description = "This region's entry for the primary stack's `regions` variable."
  value = {
    cloud_region = local.cloud_region
    bucket       = module.region.bucket_name
    kms_key_arn  = module.region.kms_key_arn
  }
}

output "global_stack_input" {
  description = "This region's entry for the global stack's `routers` variable (null without a router)."
  value = var.enable_router ? {
    alb_dns_name    = module.router[0].alb_dns_name
    alb_zone_id     = module.router[0].alb_zone_id
    router_hostname = module.router[0].router_hostname
  } : null
}

output "residency_zone" {
  description = "Residency zone of this region (null: shared)."
  value       = local.zone
}

output "zone_retrain" {
  description = "The zone's scheduled model-sync run in this stack (null when there is none): task role, task definition, security group, log group, schedule."
  value = local.run_zone_retrain ? {
    task_role_arn       = module.zone_retrain[0].task_role_arn
    task_definition_arn = module.zone_retrain[0].task_definition_arn
    security_group_id   = module.zone_retrain[0].security_group_id
    log_group_name      = module.zone_retrain[0].log_group_name
    schedule_name       = module.zone_retrain[0].schedule_name
    command             = module.zone_retrain[0].command
  } : null
}

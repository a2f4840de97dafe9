output "url" {
  description = "Public URL of the cluster (latency-routed to the nearest healthy router)."
  value       = module.dns.url
}

output "health_check_ids" {
  description = "Route 53 health check of every regional router."
  value       = module.dns.health_check_ids
}

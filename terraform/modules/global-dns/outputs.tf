output "url" {
  description = "Public URL of the georec cluster."
  value       = "https://${var.hostname}"
}

output "health_check_ids" {
  description = "Route 53 health check of each regional router."
  value       = { for k, v in aws_route53_health_check.router : k => v.id }
}

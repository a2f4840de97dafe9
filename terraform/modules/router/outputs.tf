output "router_url" {
  description = "Regional URL of this router."
  value       = "https://${var.router_hostname}"
}

output "router_hostname" {
  description = "Regional hostname (health-checked by the global DNS records)."
  value       = var.router_hostname
}

output "alb_dns_name" {
  description = "DNS name of the router load balancer (alias target of the global latency records)."
  value       = module.router.alb_dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone id of the router load balancer."
  value       = module.router.alb_zone_id
}

output "waf_web_acl_arn" {
  description = "WAF web ACL protecting the router."
  value       = aws_wafv2_web_acl.this.arn
}

variable "name" {
  description = "georec region the router runs in, e.g. \"us-west\" (names resources)."
  type        = string
}

variable "image" {
  description = "georec container image (the same image as the nodes)."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster to run in (the region module's cluster_arn)."
  type        = string
}

variable "cluster_name" {
  description = "Name of that cluster."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the router tasks and load balancer."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the router tasks; they need HTTPS egress to every region's node load balancer."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets of the internet-facing router load balancer."
  type        = list(string)
}

variable "ingress_cidrs" {
  description = "Clients allowed to reach the router on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate (this region) covering the public hostname (global DNS name) and router_hostname."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "router_hostname" {
  description = "Regional hostname of this router, e.g. \"router.us-west.georec.example.com\" (probed by the global health checks)."
  type        = string
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone for router_hostname; null to manage the record elsewhere."
  type        = string
  default     = null
}

variable "router_port" {
  description = "Port the router listens on in its task (regions.toml router.listen port)."
  type        = number
  default     = 8080
}

variable "node_urls" {
  description = "Base URLs of every region's nodes, by region name, e.g. {\"us-west\" = [\"https://node.us-west.georec.example.com\"], ...} (each region's node_url output). Every region of regions.toml should be present: a missing one keeps its local address and is never healthy."
  type        = map(list(string))

  validation {
    condition     = length(var.node_urls) > 0 && alltrue([for urls in values(var.node_urls) : length(urls) > 0])
    error_message = "node_urls needs at least one region, each with at least one URL."
  }
}

variable "cpu" {
  description = "Fargate CPU units of one router task."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate memory (MiB) of one router task."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Router tasks at creation."
  type        = number
  default     = 2
}

variable "min_count" {
  description = "Fewest router tasks autoscaling keeps."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most router tasks autoscaling starts."
  type        = number
  default     = 6
}

variable "requests_per_target" {
  description = "Requests per router task per minute autoscaling aims for."
  type        = number
  default     = 20000
}

variable "waf_rate_limit" {
  description = "Requests one client IP may send in 5 minutes before WAF blocks it."
  type        = number
  default     = 20000
}

variable "rate_limit" {
  description = "Per-client limits of the router ([router.rate_limit]): requests a second and bursts per client (X-Api-Key, else the client address the load balancer forwards) for recommendation reads, POST /events and admin routes; past them 429. The WAF rule above is the coarse per-IP backstop. extra_trusted_proxies: CIDRs of proxies in front of the load balancer (a CDN) whose X-Forwarded-For is believed too."
  type = object({
    enabled               = optional(bool, true)
    max_keys              = optional(number, 100000)
    reads_per_second      = optional(number, 50)
    reads_burst           = optional(number, 100)
    events_per_second     = optional(number, 20)
    events_burst          = optional(number, 40)
    admin_per_second      = optional(number, 1)
    admin_burst           = optional(number, 5)
    extra_trusted_proxies = optional(list(string), [])
  })
  default = {}
}

variable "admin_token_secret_arn" {
  description = "Secrets Manager secret holding GEOREC_ADMIN_TOKEN (POST /failover); null disables the admin route."
  type        = string
  default     = null
}

variable "admin_token_kms_key_arn" {
  description = "Customer managed KMS key of that secret, if any."
  type        = string
  default     = null
}

variable "extra_environment" {
  description = "More environment variables of the router, e.g. {GEOREC__HEALTH__INTERVAL_MS = \"500\"}."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "KMS key for the router's log groups (the region module's kms_key_arn)."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps router and WAF logs."
  type        = number
  default     = 365
}

variable "access_logs_bucket" {
  description = "Bucket for the load balancer's access logs (the region module's log_bucket)."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the load balancer against deletion."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

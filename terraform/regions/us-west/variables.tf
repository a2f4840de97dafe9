variable "image" {
  description = "georec image for nodes and router, built from the repository's Dockerfile and pushed where this region can pull it (ECR in this region, e.g. \"123456789012.dkr.ecr.us-west-2.amazonaws.com/georec:1.4.0\"). Use an immutable tag."
  type        = string
}

variable "domain" {
  description = "DNS domain of the deployment, e.g. \"georec.example.com\": nodes are node.<region>.<domain>, the router router.<region>.<domain>."
  type        = string
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone of `domain`; when set, the node and router records are created here. null: create them elsewhere from the *_alb_dns_name outputs."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "ACM certificate in this region covering node.<region>.<domain>, router.<region>.<domain> and the global hostname (a wildcard *.<domain> plus *.<region>.<domain> works)."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC of this region (peered or attached to a transit gateway with the other regions' VPCs, so routers reach every region's internal node load balancer)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in 2+ availability zones: node and router tasks, the internal node load balancer, Redis. They need a route to S3, ECR and CloudWatch (VPC endpoints or NAT)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets in 2+ availability zones for the router's internet-facing load balancer (unused when enable_router is false)."
  type        = list(string)
  default     = []
}

variable "node_ingress_cidrs" {
  description = "CIDRs allowed to call this region's node load balancer: the VPC CIDRs of every region that runs a router."
  type        = list(string)
}

variable "router_ingress_cidrs" {
  description = "Clients allowed to call the router."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "enable_router" {
  description = "Run a router in this region (behind the global latency DNS name). false deploys the region's nodes only."
  type        = bool
  default     = true
}

variable "node_urls" {
  description = "Override of the node base URLs the router uses, by region (default: https://node.<region>.<domain> for every region)."
  type        = map(list(string))
  default     = {}
}

variable "bucket_name" {
  description = "Model bucket of this region; null uses the name in regions.toml. Bucket names are global, so a real deployment usually needs its own (the nodes get it through GEOREC__REGIONS__<NAME>__S3__BUCKET)."
  type        = string
  default     = null
}

variable "writer_role_arns" {
  description = "Only these principals may write the model bucket (the primary stack's model_sync_role_arn and replication_role_arn). Empty: IAM policies alone decide."
  type        = list(string)
  default     = []
}

variable "admin_token_secret_arn" {
  description = "Secrets Manager secret with GEOREC_ADMIN_TOKEN for node and router admin routes; null disables them."
  type        = string
  default     = null
}

variable "admin_token_kms_key_arn" {
  description = "Customer managed KMS key of the admin token secret, if it has one."
  type        = string
  default     = null
}

variable "node_cpu" {
  description = "Fargate CPU units of a node task."
  type        = number
  default     = 1024
}

variable "node_memory" {
  description = "Fargate memory (MiB) of a node task: at least twice the decoded model plus 100 MB."
  type        = number
  default     = 4096
}

variable "node_min_count" {
  description = "Fewest node tasks."
  type        = number
  default     = 2
}

variable "node_max_count" {
  description = "Most node tasks."
  type        = number
  default     = 10
}

variable "router_min_count" {
  description = "Fewest router tasks."
  type        = number
  default     = 2
}

variable "router_max_count" {
  description = "Most router tasks."
  type        = number
  default     = 6
}

variable "node_environment" {
  description = "Extra environment of the node tasks (GEOREC__CACHE__TTL_SECS, RUST_LOG, ...)."
  type        = map(string)
  default     = {}
}

variable "router_environment" {
  description = "Extra environment of the router tasks (GEOREC__HEALTH__INTERVAL_MS, ...)."
  type        = map(string)
  default     = {}
}

variable "residency_zones" {
  description = "Residency zones, region -> zone (regions.toml `residency`), e.g. {\"eu-west\" = \"eu\"}: the same map in every region stack. The router tasks get the residency of every zoned region, the node tasks of a zoned region that of their zone's regions (GEOREC__REGIONS__<R>__RESIDENCY), and each zoned region's failover list becomes the other regions of its zone (GEOREC__REGIONS__<R>__FAILOVER, [] for a zone of one region); router_environment and node_environment override either. {}: no zone."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for z in values(var.residency_zones) : can(regex("^[a-z0-9-]+$", z))])
    error_message = "Zone names are lower-case letters, digits and '-'."
  }
}

variable "zone_retrain" {
  description = <<-EOT
    The scheduled regional model of this region's residency zone (modules/zone-retrain): an ECS
    Fargate task running `model-sync run --once --zone <zone> --work-dir <dir>` from EventBridge
    Scheduler. Created only when enabled and this region is the first region (by name) of a zone
    in residency_zones, whose bucket holds the zone's home store. primary_bucket (the primary
    stack's bucket_name, read only: shared events and erasure records) is required then;
    primary_kms_key_arn narrows the decrypt permission to the primary's key; extra_args are added
    to the command (no --data: the model is built from the events alone); environment adds
    GEOREC__* overrides (e.g. the S3 and Redis settings of the zone's regions in other stacks).
  EOT
  type = object({
    enabled              = optional(bool, false)
    primary_bucket       = optional(string)
    primary_cloud_region = optional(string, "us-west-2")
    primary_kms_key_arn  = optional(string)
    schedule_expression  = optional(string, "rate(1 hour)")
    paused               = optional(bool, false)
    extra_args           = optional(list(string), [])
    environment          = optional(map(string), {})
    cpu                  = optional(number, 2048)
    memory               = optional(number, 8192)
  })
  default = {}

  validation {
    condition     = !var.zone_retrain.enabled || var.zone_retrain.primary_bucket != null
    error_message = "zone_retrain.enabled needs zone_retrain.primary_bucket (the primary stack's bucket_name)."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_maxmemory_policy" {
  description = "Redis eviction policy when full."
  type        = string
  default     = "volatile-lru"
}

variable "redis_transit_encryption" {
  description = "TLS to Redis; only once region-node's Redis client supports TLS (see terraform/README.md)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days deleted or replaced model objects stay recoverable in the bucket."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps logs."
  type        = number
  default     = 365
}

variable "deletion_protection" {
  description = "Protect load balancers against deletion (set false, apply, then destroy)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

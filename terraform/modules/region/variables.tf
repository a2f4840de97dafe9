# ---------------------------------------------------------------------------- identity

variable "name" {
  description = "georec region name as in regions.toml, e.g. \"us-west\". Names resources and selects the GEOREC__REGIONS__<NAME>__* overrides."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.name))
    error_message = "Region names are lower-case letters, digits and '-' (as regions.toml requires)."
  }
}

variable "cloud_region" {
  description = "AWS region of this georec region (regions.toml `cloud_region`, e.g. \"us-west-2\"); must be the provider's region."
  type        = string
}

variable "image" {
  description = "georec container image (built from the repository's Dockerfile and pushed to a registry the tasks can reach, normally ECR in this region)."
  type        = string
}

# ---------------------------------------------------------------------------- network

variable "vpc_id" {
  description = "Existing VPC of this region. It needs private subnets with a route to S3 (gateway endpoint or NAT) and to ECR/CloudWatch (interface endpoints or NAT)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more availability zones) for the node tasks, the internal load balancer and Redis."
  type        = list(string)
}

variable "node_ingress_cidrs" {
  description = "CIDR blocks allowed to call the node load balancer on 443: the VPCs of every router (all regions, reached through peering or a transit gateway)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate (in this region) of the node load balancer, covering node_hostname."
  type        = string
}

variable "node_hostname" {
  description = "Hostname routers use to reach this region's nodes, e.g. \"node.us-west.georec.example.com\". Must be covered by certificate_arn; a record is created when dns_zone_id is set."
  type        = string
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone for node_hostname; null to manage the record elsewhere (point it at the output node_alb_dns_name)."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listeners."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

# ---------------------------------------------------------------------------- region node service

variable "node_port" {
  description = "Port the region node listens on in its task (regions.toml `listen` port of this region)."
  type        = number
}

variable "node_cpu" {
  description = "Fargate CPU units of one node task."
  type        = number
  default     = 1024
}

variable "node_memory" {
  description = "Fargate memory (MiB) of one node task: at least twice the decoded model plus 100 MB (the old model serves while the new one loads)."
  type        = number
  default     = 4096
}

variable "node_desired_count" {
  description = "Node tasks at creation."
  type        = number
  default     = 2
}

variable "node_min_count" {
  description = "Fewest node tasks autoscaling keeps (2+ for availability across zones)."
  type        = number
  default     = 2
}

variable "node_max_count" {
  description = "Most node tasks autoscaling starts."
  type        = number
  default     = 10
}

variable "node_cpu_target_percent" {
  description = "Average CPU utilisation node autoscaling aims for."
  type        = number
  default     = 60
}

variable "node_requests_per_target" {
  description = "Requests per node task per minute autoscaling aims for."
  type        = number
  default     = 6000
}

variable "admin_token_secret_arn" {
  description = "Secrets Manager secret holding GEOREC_ADMIN_TOKEN (admin routes such as POST /admin/model/reload); null disables the admin routes."
  type        = string
  default     = null
}

variable "admin_token_kms_key_arn" {
  description = "Customer managed KMS key of that secret, if any (decrypt is granted to the task execution role)."
  type        = string
  default     = null
}

variable "extra_environment" {
  description = "More environment variables of the node tasks, e.g. {GEOREC__CACHE__TTL_SECS = \"600\", RUST_LOG = \"debug\"}."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------- model bucket

variable "bucket_name" {
  description = "Name of this region's model bucket (regions.toml `s3.bucket`; S3 names are global, so deployments usually add a suffix). The nodes get it through GEOREC__REGIONS__<NAME>__S3__BUCKET."
  type        = string
}

variable "bucket_prefix" {
  description = "Key prefix of georec objects in the bucket (regions.toml `s3.prefix`)."
  type        = string
  default     = "georec/"
}

variable "noncurrent_version_days" {
  description = "Days S3 keeps noncurrent object versions (what `model-sync gc` deleted or a re-upload replaced) before expiring them."
  type        = number
  default     = 30
}

variable "writer_role_arns" {
  description = "If not empty, only these principals (the model-sync role, the replication role) may write or delete objects in the model bucket; everyone else is denied by the bucket policy."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------- Redis

variable "redis_node_type" {
  description = "ElastiCache node type of the region's Redis."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "redis_replicas" {
  description = "Cache nodes in the replication group, primary included (at least 2: automatic failover to a replica in another zone)."
  type        = number
  default     = 2

  validation {
    condition     = var.redis_replicas >= 2 && var.redis_replicas <= 6
    error_message = "redis_replicas must be 2-6 (Multi-AZ automatic failover needs a replica)."
  }
}

variable "redis_maxmemory_policy" {
  description = "Eviction policy once Redis is full: volatile-lru evicts only keys with a TTL (cached answers, recent-event lists), never the event stream."
  type        = string
  default     = "volatile-lru"
}

variable "redis_snapshot_retention_days" {
  description = "Days of automatic Redis snapshots kept (ElastiCache has no append-only file; replicas plus snapshots keep the data)."
  type        = number
  default     = 7
}

variable "redis_transit_encryption" {
  description = "TLS between nodes and Redis. Requires a region-node built with the redis crate's TLS support (the URL becomes rediss://); today's build speaks plain TCP, so keep false until then."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------- operations

variable "log_retention_days" {
  description = "Days CloudWatch keeps logs (containers, Redis, ECS exec)."
  type        = number
  default     = 365
}

variable "access_log_days" {
  description = "Days load balancer and S3 access logs are kept in the region's log bucket."
  type        = number
  default     = 90
}

variable "deletion_protection" {
  description = "Protect load balancers against deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

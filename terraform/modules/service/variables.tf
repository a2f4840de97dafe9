variable "name" {
  description = "Name of the service and prefix of everything it creates, e.g. \"georec-us-west-node\"."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster the service runs in."
  type        = string
}

variable "cluster_name" {
  description = "Name of that ECS cluster (used by the autoscaling resource id)."
  type        = string
}

variable "image" {
  description = "Container image of georec (the Dockerfile at the repository root), e.g. \"123456789012.dkr.ecr.us-west-2.amazonaws.com/georec:1.4.0\". Pull permission is granted for ECR images."
  type        = string
}

variable "command" {
  description = "Command of the container, e.g. [\"region-node\", \"--region\", \"us-west\"]."
  type        = list(string)
}

variable "container_port" {
  description = "Port the process listens on inside the task (and the target group forwards to)."
  type        = number
}

variable "environment" {
  description = "Plain environment variables of the container (GEOREC__* overrides of regions.toml, RUST_LOG, ...). Never secrets: use `secrets`."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables filled from Secrets Manager or SSM at start: name -> secret or parameter ARN. The execution role may read exactly these."
  type        = map(string)
  default     = {}
}

variable "secrets_kms_key_arns" {
  description = "Customer managed KMS keys that encrypt the secrets above (decrypt is granted to the execution role). Empty when they use the AWS managed key."
  type        = list(string)
  default     = []
}

variable "container_health_check_path" {
  description = "Path probed by the ECS container health check (liveness): a failing container is replaced."
  type        = string
  default     = "/health/live"
}

variable "target_health_check_path" {
  description = "Path probed by the load balancer (readiness): only targets answering 200 get traffic."
  type        = string
}

variable "cpu" {
  description = "Fargate task CPU units (256, 512, 1024, 2048, 4096, ...)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate task memory in MiB; must suit `cpu`. A region node holds two models during a swap."
  type        = number
  default     = 2048
}

variable "desired_count" {
  description = "Tasks started with the service; autoscaling moves it between min_count and max_count afterwards."
  type        = number
  default     = 2
}

variable "min_count" {
  description = "Fewest tasks autoscaling keeps."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most tasks autoscaling starts."
  type        = number
  default     = 8
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation autoscaling aims for."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Load balancer requests per task per minute autoscaling aims for."
  type        = number
  default     = 6000
}

variable "health_check_grace_period_seconds" {
  description = "Seconds after a task starts during which failing load balancer checks do not replace it (model download and decode time)."
  type        = number
  default     = 180
}

variable "vpc_id" {
  description = "VPC of the tasks and the load balancer."
  type        = string
}

variable "task_subnet_ids" {
  description = "Private subnets of the tasks (no public IPs are assigned)."
  type        = list(string)
}

variable "alb_subnet_ids" {
  description = "Subnets of the load balancer: private for an internal one, public for an internet-facing one."
  type        = list(string)
}

variable "internal" {
  description = "Whether the load balancer is internal (region nodes) or internet-facing (routers)."
  type        = bool
  default     = true
}

variable "ingress_cidrs" {
  description = "CIDR blocks allowed to reach the load balancer on 443."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener (in the same region)."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket receiving the load balancer's access logs (SSE-S3, policy for log delivery in place)."
  type        = string
}

variable "enable_waf" {
  description = "Associate `waf_web_acl_arn` with the load balancer (required for internet-facing ones)."
  type        = bool
  default     = false
}

variable "waf_web_acl_arn" {
  description = "WAFv2 web ACL (REGIONAL) to associate when enable_waf is true."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the load balancer against deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key encrypting the service's CloudWatch log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the container logs."
  type        = number
  default     = 365
}

variable "task_policy_json" {
  description = "IAM policy (JSON) of the task role: what the application may do in AWS. null gives a role with no permissions."
  type        = string
  default     = null
}

variable "extra_task_egress" {
  description = "Extra egress rules of the tasks towards other security groups, e.g. Redis on 6379."
  type = list(object({
    description       = string
    port              = number
    security_group_id = string
  }))
  default = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

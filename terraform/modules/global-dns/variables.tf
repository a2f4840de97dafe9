variable "zone_id" {
  description = "Route 53 public hosted zone of `hostname`."
  type        = string
}

variable "hostname" {
  description = "Public name clients use, e.g. \"api.georec.example.com\". Each router's certificate must cover it."
  type        = string
}

variable "routers" {
  description = "Regional routers by georec region: AWS region (latency routing), load balancer DNS name and zone id (the region stack's router outputs), and the regional hostname the health check probes."
  type = map(object({
    cloud_region    = string
    alb_dns_name    = string
    alb_zone_id     = string
    router_hostname = string
  }))
}

variable "health_check_path" {
  description = "Path probed on each router (the router answers GET /regions with 200 while it serves)."
  type        = string
  default     = "/regions"
}

variable "failure_threshold" {
  description = "Consecutive failed Route 53 checks before a region leaves the answer."
  type        = number
  default     = 3
}

variable "request_interval" {
  description = "Seconds between Route 53 checks from each checker (10 or 30)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to the health checks."
  type        = map(string)
  default     = {}
}

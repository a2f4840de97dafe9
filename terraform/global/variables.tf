variable "zone_id" {
  description = "Route 53 public hosted zone of `hostname`."
  type        = string
}

variable "hostname" {
  description = "Public name of the cluster, e.g. \"api.georec.example.com\" (covered by every router's certificate)."
  type        = string
}

variable "routers" {
  description = "Regional routers by georec region: each region stack's global_stack_input output (alb_dns_name, alb_zone_id, router_hostname). Regions left out get no traffic from DNS."
  type = map(object({
    alb_dns_name    = string
    alb_zone_id     = string
    router_hostname = string
  }))
}

variable "health_check_path" {
  description = "Path Route 53 probes on every router."
  type        = string
  default     = "/regions"
}

variable "failure_threshold" {
  description = "Failed probes in a row before a region is taken out of DNS answers."
  type        = number
  default     = 3
}

variable "request_interval" {
  description = "Seconds between probes (10 or 30)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "name" {
  description = "Bucket name (S3 names are global: include the account id or another unique part)."
  type        = string
}

variable "expiration_days" {
  description = "Days access logs are kept."
  type        = number
  default     = 90
}

variable "allow_load_balancer_logs" {
  description = "Let Elastic Load Balancing of this region deliver access logs here."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

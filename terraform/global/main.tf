# Route 53 is global; the provider region only hosts the API calls.
provider "aws" {
  region = "us-east-1"

  default_tags {
    tags = merge({ Project = "georec", GeorecRegion = "global", ManagedBy = "terraform" }, var.tags)
  }
}

module "dns" {
  source = "../modules/global-dns"

  zone_id  = var.zone_id
  hostname = var.hostname

  routers = {
    for name, r in var.routers : name => {
      cloud_region    = local.regions[name]
      alb_dns_name    = r.alb_dns_name
      alb_zone_id     = r.alb_zone_id
      router_hostname = r.router_hostname
    }
  }

  health_check_path = var.health_check_path
  failure_threshold = var.failure_threshold
  request_interval  = var.request_interval
}

check "routers_are_known_regions" {
  assert {
    condition     = alltrue([for name in keys(var.routers) : contains(keys(local.regions), name)])
    error_message = "routers has regions that are not in regions.toml: ${join(", ", setsubtract(keys(var.routers), keys(local.regions)))}."
  }
}

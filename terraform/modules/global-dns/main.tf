# Global entry point: one latency-based alias record per regional router, each with a
# Route 53 health check, so clients reach the nearest healthy region. Inside a region the
# router fails over between regions by itself; DNS handles a whole region (router
# included) going away.

resource "aws_route53_health_check" "router" {
  for_each          = var.routers
  type              = "HTTPS"
  fqdn              = each.value.router_hostname
  port              = 443
  resource_path     = var.health_check_path
  enable_sni        = true
  failure_threshold = var.failure_threshold
  request_interval  = var.request_interval
  measure_latency   = true

  tags = merge(var.tags, { Name = "georec-router-${each.key}" })
}

resource "aws_route53_record" "latency" {
  #checkov:skip=CKV2_AWS_23:Every record is an alias of a router load balancer created by a region stack (modules/router) and passed in through var.routers; checkov cannot follow a for_each value to it.
  for_each       = var.routers
  zone_id        = var.zone_id
  name           = var.hostname
  type           = "A"
  set_identifier = each.key

  latency_routing_policy {
    region = each.value.cloud_region
  }

  health_check_id = aws_route53_health_check.router[each.key].id

  alias {
    name                   = each.value.alb_dns_name
    zone_id                = each.value.alb_zone_id
    evaluate_target_health = true
  }
}

# The router of one region: an ECS Fargate service behind an internet-facing HTTPS load
# balancer protected by WAF. It knows every region's nodes (node_urls) and fails over
# between them; terraform/global puts latency-based DNS in front of the regional routers.

locals {
  prefix = "georec-${var.name}-router"

  url_env = {
    for region, urls in var.node_urls :
    "GEOREC__REGIONS__${upper(replace(region, "-", "_"))}__URLS" => jsonencode(urls)
  }

  # Per-client rate limits ([router.rate_limit]). The load balancer's nodes live in the
  # public subnets: those are the proxies whose X-Forwarded-For names the client.
  rate_limit_env = {
    GEOREC__ROUTER__RATE_LIMIT__ENABLED         = tostring(var.rate_limit.enabled)
    GEOREC__ROUTER__RATE_LIMIT__TRUSTED_PROXIES = jsonencode(concat([for s in data.aws_subnet.public : s.cidr_block], var.rate_limit.extra_trusted_proxies))
    GEOREC__ROUTER__RATE_LIMIT__MAX_KEYS        = tostring(var.rate_limit.max_keys)
    GEOREC__ROUTER__RATE_LIMIT__READS           = "{ per_second = ${var.rate_limit.reads_per_second}, burst = ${var.rate_limit.reads_burst} }"
    GEOREC__ROUTER__RATE_LIMIT__EVENTS          = "{ per_second = ${var.rate_limit.events_per_second}, burst = ${var.rate_limit.events_burst} }"
    GEOREC__ROUTER__RATE_LIMIT__ADMIN           = "{ per_second = ${var.rate_limit.admin_per_second}, burst = ${var.rate_limit.admin_burst} }"
  }

  environment = merge(
    local.url_env,
    local.rate_limit_env,
    {
      GEOREC__ROUTER__LISTEN = "0.0.0.0:${var.router_port}"
      GEOREC_LOG_JSON        = "true"
      GEOREC_HEALTHCHECK_URL = "http://127.0.0.1:${var.router_port}/regions"
      RUST_LOG               = "info"
    },
    var.extra_environment,
  )
}

data "aws_subnet" "public" {
  for_each = toset(var.public_subnet_ids)
  id       = each.value
}

# ---------------------------------------------------------------------------- WAF

resource "aws_wafv2_web_acl" "this" {
  name        = local.prefix
  description = "georec router ${var.name}: AWS managed protections and a per-IP rate limit"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "aws-common"
    priority = 10
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-common"
      sampled_requests_enabled   = true
    }
  }

  # Includes the Log4j (CVE-2021-44228) signatures.
  rule {
    name     = "aws-known-bad-inputs"
    priority = 20
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 30
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  # Anonymizers (Tor, VPNs, proxies) are blocked; hosting providers only counted, since
  # shops commonly call the API from their own cloud servers.
  rule {
    name     = "aws-anonymous-ip"
    priority = 35
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"
        rule_action_override {
          name = "HostingProviderIPList"
          action_to_use {
            count {}
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 40
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.prefix}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = local.prefix
    sampled_requests_enabled   = true
  }

  tags = var.tags
}

# WAF only logs to log groups whose name starts with aws-waf-logs-.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${local.prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]
}

# ---------------------------------------------------------------------------- service

module "router" {
  source = "../service"

  name           = local.prefix
  cluster_arn    = var.cluster_arn
  cluster_name   = var.cluster_name
  image          = var.image
  command        = ["router"]
  container_port = var.router_port
  environment    = local.environment
  secrets        = var.admin_token_secret_arn == null ? {} : { GEOREC_ADMIN_TOKEN = var.admin_token_secret_arn }

  secrets_kms_key_arns = var.admin_token_kms_key_arn == null ? [] : [var.admin_token_kms_key_arn]
  # The router has no /health route: /regions answers 200 while it serves.
  container_health_check_path = "/regions"
  target_health_check_path    = "/regions"
  # The router calls nodes over HTTPS and nothing in AWS: its task role has no permissions.
  task_policy_json = null

  cpu                 = var.cpu
  memory              = var.memory
  desired_count       = var.desired_count
  min_count           = var.min_count
  max_count           = var.max_count
  requests_per_target = var.requests_per_target

  health_check_grace_period_seconds = 30

  vpc_id          = var.vpc_id
  task_subnet_ids = var.private_subnet_ids
  alb_subnet_ids  = var.public_subnet_ids
  internal        = false
  ingress_cidrs   = var.ingress_cidrs
  certificate_arn = var.certificate_arn
  ssl_policy      = var.ssl_policy
  enable_waf      = true
  waf_web_acl_arn = aws_wafv2_web_acl.this.arn

  alb_access_logs_bucket = var.access_logs_bucket
  deletion_protection    = var.deletion_protection
  kms_key_arn            = var.kms_key_arn
  log_retention_days     = var.log_retention_days

  tags = var.tags
}

resource "aws_route53_record" "router" {
  count   = var.dns_zone_id == null ? 0 : 1
  zone_id = var.dns_zone_id
  name    = var.router_hostname
  type    = "A"

  alias {
    name                   = module.router.alb_dns_name
    zone_id                = module.router.alb_zone_id
    evaluate_target_health = true
  }
}

provider "aws" {
  region = local.cloud_region

  default_tags {
    tags = merge({ Project = "georec", GeorecRegion = local.region, ManagedBy = "terraform" }, var.tags)
  }
}

locals {
  node_hostname   = "node.${local.region}.${var.domain}"
  router_hostname = "router.${local.region}.${var.domain}"

  # By default every region's nodes are at https://node.<region>.<domain>.
  node_urls = merge(
    { for r in local.all_regions : r => ["https://node.${r}.${var.domain}"] },
    var.node_urls,
  )
}

module "region" {
  source = "../../modules/region"

  name          = local.region
  cloud_region  = local.cloud_region
  image         = var.image
  node_port     = local.node_port
  bucket_name   = coalesce(var.bucket_name, local.bucket)
  bucket_prefix = local.prefix

  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  node_ingress_cidrs = var.node_ingress_cidrs
  certificate_arn    = var.certificate_arn
  node_hostname      = local.node_hostname
  dns_zone_id        = var.dns_zone_id

  node_cpu                = var.node_cpu
  node_memory             = var.node_memory
  node_min_count          = var.node_min_count
  node_max_count          = var.node_max_count
  admin_token_secret_arn  = var.admin_token_secret_arn
  admin_token_kms_key_arn = var.admin_token_kms_key_arn
  extra_environment       = var.node_environment
  writer_role_arns        = var.writer_role_arns

  redis_node_type          = var.redis_node_type
  redis_maxmemory_policy   = var.redis_maxmemory_policy
  redis_transit_encryption = var.redis_transit_encryption

  noncurrent_version_days = var.noncurrent_version_days
  log_retention_days      = var.log_retention_days
  deletion_protection     = var.deletion_protection
}

module "router" {
  count  = var.enable_router ? 1 : 0
  source = "../../modules/router"

  name               = local.region
  image              = var.image
  cluster_arn        = module.region.cluster_arn
  cluster_name       = module.region.cluster_name
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  public_subnet_ids  = var.public_subnet_ids
  ingress_cidrs      = var.router_ingress_cidrs
  certificate_arn    = var.certificate_arn
  router_hostname    = local.router_hostname
  dns_zone_id        = var.dns_zone_id
  router_port        = local.router_port
  node_urls          = local.node_urls

  min_count               = var.router_min_count
  max_count               = var.router_max_count
  admin_token_secret_arn  = var.admin_token_secret_arn
  admin_token_kms_key_arn = var.admin_token_kms_key_arn
  extra_environment       = var.router_environment

  kms_key_arn         = module.region.kms_key_arn
  access_logs_bucket  = module.region.log_bucket
  log_retention_days  = var.log_retention_days
  deletion_protection = var.deletion_protection
}

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

  # Residency zones (residency_zones: region -> zone). Every binary validates the whole
  # configuration: a zoned region may fail over only within its zone, so its failover list is
  # replaced by the zone's other regions (by name; [] for a zone of one region).
  env_key = { for r in local.all_regions : r => "GEOREC__REGIONS__${upper(replace(r, "-", "_"))}" }
  zones   = distinct(values(var.residency_zones))
  zone_regions = {
    for z in local.zones : z => sort([for r, rz in var.residency_zones : r if rz == z])
  }
  residency_env = {
    for r, z in var.residency_zones : r => {
      "${local.env_key[r]}__RESIDENCY" = z
      "${local.env_key[r]}__FAILOVER"  = jsonencode([for o in local.zone_regions[z] : o if o != r])
    }
  }
  # The router sees every zone (it keeps a zone's POST /events inside the zone); the nodes of
  # a zoned region see their zone's regions; the nodes of a shared region see none.
  router_residency_env = merge(values(local.residency_env)...)
  zone                 = lookup(var.residency_zones, local.region, null)
  zone_env             = local.zone == null ? {} : merge([for r in local.zone_regions[local.zone] : local.residency_env[r]]...)

  # The zone's scheduled `model-sync run --once --zone`, in the stack of its first region.
  zone_home         = local.zone != null && try(local.zone_regions[local.zone][0], null) == local.region
  run_zone_retrain  = local.zone_home && var.zone_retrain.enabled
  zone_retrain_role = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/georec-${local.region}-zone-${coalesce(local.zone, "none")}-retrain-task"
  zone_retrain_environment = local.zone == null ? {} : merge(
    local.zone_env,
    {
      GEOREC__PRIMARY__ENDPOINT                      = "https://s3.${var.zone_retrain.primary_cloud_region}.amazonaws.com"
      GEOREC__PRIMARY__BUCKET                        = coalesce(var.zone_retrain.primary_bucket, "(zone_retrain.primary_bucket)")
      GEOREC__PRIMARY__PREFIX                        = local.prefix
      GEOREC__PRIMARY__CLOUD_REGION                  = var.zone_retrain.primary_cloud_region
      "${local.env_key[local.region]}__REDIS_URL"    = module.region.redis_url
      "${local.env_key[local.region]}__CLOUD_REGION" = local.cloud_region
      "${local.env_key[local.region]}__S3__ENDPOINT" = module.region.s3_endpoint
      "${local.env_key[local.region]}__S3__BUCKET"   = module.region.bucket_name
      "${local.env_key[local.region]}__S3__PREFIX"   = local.prefix
      AWS_REGION                                     = local.cloud_region
      GEOREC_LOG_JSON                                = "true"
      RUST_LOG                                       = "info"
    },
    # The zone's nodes, sent the erasures they missed.
    { for r in local.zone_regions[local.zone] : "${local.env_key[r]}__URLS" => jsonencode(local.node_urls[r]) },
    var.zone_retrain.environment,
  )
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

check "residency_zones" {
  assert {
    condition     = alltrue([for r in keys(var.residency_zones) : contains(local.all_regions, r)])
    error_message = "residency_zones names regions regions.toml does not have (regions: ${join(", ", local.all_regions)})."
  }
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
  extra_environment       = merge(local.zone_env, var.node_environment)
  # Restricted writers: model-sync's roles, and the zone's scheduled run in its home region.
  writer_role_arns = length(var.writer_role_arns) == 0 || !local.run_zone_retrain ? var.writer_role_arns : concat(var.writer_role_arns, [local.zone_retrain_role])

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
  extra_environment       = merge(local.router_residency_env, var.router_environment)

  kms_key_arn         = module.region.kms_key_arn
  access_logs_bucket  = module.region.log_bucket
  log_retention_days  = var.log_retention_days
  deletion_protection = var.deletion_protection
}

module "zone_retrain" {
  count  = local.run_zone_retrain ? 1 : 0
  source = "../../modules/zone-retrain"

  zone         = local.zone
  region       = local.region
  cloud_region = local.cloud_region
  image        = var.image
  cluster_arn  = module.region.cluster_arn
  vpc_id       = var.vpc_id
  subnet_ids   = var.private_subnet_ids

  redis_security_group_id = module.region.redis_security_group_id
  bucket_arn              = module.region.bucket_arn
  bucket_prefix           = local.prefix
  kms_key_arn             = module.region.kms_key_arn
  primary_bucket          = var.zone_retrain.primary_bucket
  primary_cloud_region    = var.zone_retrain.primary_cloud_region
  primary_kms_key_arn     = var.zone_retrain.primary_kms_key_arn
  environment             = local.zone_retrain_environment
  admin_token_secret_arn  = var.admin_token_secret_arn
  admin_token_kms_key_arn = var.admin_token_kms_key_arn

  schedule_expression = var.zone_retrain.schedule_expression
  enabled             = !var.zone_retrain.paused
  extra_args          = var.zone_retrain.extra_args
  cpu                 = var.zone_retrain.cpu
  memory              = var.zone_retrain.memory
  log_retention_days  = var.log_retention_days
}

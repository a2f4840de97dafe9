# This stack deploys georec region "eu-west" on its own. The values below must match
# regions.toml [regions.eu-west] (scripts/check-deploy compares them); every other .tf file in
# this directory is identical across terraform/regions/*.
locals {
  region       = "eu-west"
  cloud_region = "eu-west-1"
  node_port    = 8002
  prefix       = "georec/"
  bucket       = "georec-eu-west"

  # Every region of regions.toml: the router of this region can fail over to all of them.
  all_regions = ["ap-south", "eu-west", "us-east", "us-west"]
  router_port = 8080
}

# This stack deploys georec region "us-east" on its own. The values below must match
# regions.toml [regions.us-east] (scripts/check-deploy compares them); every other .tf file in
# this directory is identical across terraform/regions/*.
locals {
  region       = "us-east"
  cloud_region = "us-east-1"
  node_port    = 8001
  prefix       = "georec/"
  bucket       = "georec-us-east"

  # Every region of regions.toml: the router of this region can fail over to all of them.
  all_regions = ["ap-south", "eu-west", "us-east", "us-west"]
  router_port = 8080
}

# This stack deploys georec region "ap-south" on its own. The values below must match
# regions.toml [regions.ap-south] (scripts/check-deploy compares them); every other .tf file in
# this directory is identical across terraform/regions/*.
locals {
  region       = "ap-south"
  cloud_region = "ap-south-1"
  node_port    = 8003
  prefix       = "georec/"
  bucket       = "georec-ap-south"

  # Every region of regions.toml: the router of this region can fail over to all of them.
  all_regions = ["ap-south", "eu-west", "us-east", "us-west"]
  router_port = 8080
}

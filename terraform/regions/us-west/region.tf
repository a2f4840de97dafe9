# This stack deploys georec region "us-west" on its own. The values below must match
# regions.toml [regions.us-west] (scripts/check-deploy compares them); every other .tf file in
# this directory is identical across terraform/regions/*.
locals {
  region       = "us-west"
  cloud_region = "us-west-2"
  node_port    = 8000
  prefix       = "georec/"
  bucket       = "georec-us-west"

  # Every region of regions.toml: the router of this region can fail over to all of them.
  all_regions = ["ap-south", "eu-west", "us-east", "us-west"]
  router_port = 8080
}
